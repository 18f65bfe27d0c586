"""schemathesis (`--checks all`) against both live servers, with credentials: every
generated request, valid or not, gets an answer the spec allows, and a schema-valid one is
accepted except where openapi/schemathesis.toml names a rule JSON Schema cannot state."""

import base64
import subprocess
from pathlib import Path

import httpx

import conftest
from conftest import HALLPASS, LOCKER

CONFIG = Path(__file__).resolve().parents[2] / "openapi" / "schemathesis.toml"


def schemathesis(spec_url: str, authorization: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            "schemathesis",
            "--no-color",
            "--config-file",
            str(CONFIG),
            "run",
            "--checks",
            "all",
            "--max-examples",
            "30",
            "--generation-deterministic",
            "--header",
            f"Authorization: {authorization}",
            spec_url,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )


def assert_nothing_found(run: subprocess.CompletedProcess):
    """Exit code 0 and no failure or error in the summary. Warnings (an operation that only
    answered 401 to the run's credentials, random ids that are 404) are not findings."""
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-8000:]
    summary = report[report.rfind("SUMMARY") :]
    assert "Failures:" not in summary and "Errors:" not in summary, summary
    assert "Tested:" in summary, summary


def test_schemathesis_finds_nothing_in_hallpass_with_a_users_credentials():
    username, password = conftest.new_user()
    basic = base64.b64encode(f"{username}:{password}".encode()).decode()

    assert_nothing_found(schemathesis(f"{HALLPASS}/openapi.json", f"Basic {basic}"))


def test_schemathesis_finds_nothing_in_the_beer_locker_with_a_token():
    user = conftest.new_user()
    client = conftest.new_client(user, grant_types=["client_credentials"], scope="beers:read beers:write")
    r = httpx.post(
        f"{HALLPASS}/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "beers:read beers:write"},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert r.status_code == 200, r.text

    assert_nothing_found(schemathesis(f"{LOCKER}/openapi.json", f"Bearer {r.json()['access_token']}"))
