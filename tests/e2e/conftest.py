"""Fixtures of the end-to-end tests: the live servers that tests/e2e/run.sh started, users
and clients made over plain HTTP, the authorization-code flow without a browser (login form
and consent, as tests/api/helpers.rs does), small loopback web servers (a redirect target, the
single-page app), and Playwright driving Debian's Chromium with a screenshot of every page."""

import base64
import hashlib
import html
import http.server
import json
import os
import re
import secrets
import threading
import urllib.parse
from pathlib import Path

import httpx
import pytest

HALLPASS = os.environ["E2E_HALLPASS"]
LOCKER = os.environ["E2E_LOCKER"]
SPA_ORIGIN = os.environ["E2E_SPA_ORIGIN"]
OTHER_ORIGIN = os.environ["E2E_OTHER_ORIGIN"]
SCREENSHOTS = Path(os.environ["E2E_SCREENSHOTS"])
PASSWORD = "correct horse battery"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def pkce() -> tuple[str, str]:
    """A PKCE verifier and its S256 challenge (RFC 7636 §4.2)."""
    verifier = secrets.token_urlsafe(32)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def hidden_input(page: str, name: str) -> str:
    m = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert m, f"no hidden {name!r} field in:\n{page[:2000]}"
    return html.unescape(m.group(1))


def new_user() -> tuple[str, str]:
    """Registers a fresh user over plain HTTP; returns (username, password)."""
    name = unique("e2e")
    r = httpx.post(f"{HALLPASS}/api/users", json={"username": name, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return name, PASSWORD


def new_client(user: tuple[str, str], **fields) -> dict:
    """Registers a client owned by `user` (HTTP Basic); returns the registration response."""
    body = {"client_name": unique("E2E App"), **fields}
    r = httpx.post(f"{HALLPASS}/api/clients", json=body, auth=user)
    assert r.status_code == 201, r.text
    return r.json()


def authorize_url(client_id: str, redirect_uri: str, scope: str, challenge: str, state: str) -> str:
    query = urllib.parse.urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": scope,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"{HALLPASS}/oauth2/authorize?{query}"


def code_without_browser(user: tuple[str, str], client: dict, scope: str) -> tuple[str, str]:
    """The code flow over plain HTTP: authorize → login form → consent → allow.

    Returns (code, verifier) for the client's first redirect URI."""
    verifier, challenge = pkce()
    redirect_uri = client["redirect_uris"][0]
    with httpx.Client(base_url=HALLPASS, follow_redirects=False) as http:
        url = authorize_url(client["client_id"], redirect_uri, scope, challenge, "e2e-state")
        login = http.get(url)
        assert login.status_code == 200, login.text
        signed_in = http.post(
            "/login",
            data={
                "username": user[0],
                "password": user[1],
                "csrf": hidden_input(login.text, "csrf"),
                "return_to": hidden_input(login.text, "return_to"),
            },
        )
        assert signed_in.status_code == 303, signed_in.text
        consent = http.get(signed_in.headers["location"])
        assert consent.status_code == 200, consent.text
        allowed = http.post(
            "/oauth2/authorize",
            data={"decision": "allow", "txn": hidden_input(consent.text, "txn")},
        )
        assert allowed.status_code == 303, allowed.text
    params = urllib.parse.parse_qs(urllib.parse.urlsplit(allowed.headers["location"]).query)
    assert params["state"] == ["e2e-state"]
    return params["code"][0], verifier


class LoopbackSite:
    """A tiny web server on a loopback port: files from `root` (if any), `/config.json` from
    `config`, and every other path a page that shows its query. Records the paths it got."""

    def __init__(self, port: int = 0, root: Path | None = None, config: dict | None = None):
        site = self
        self.requests: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the stdlib's name)
                site.requests.append(self.path)
                path = urllib.parse.urlsplit(self.path).path
                file = root / path.lstrip("/") if root else None
                if path == "/config.json":
                    self.answer(json.dumps(config or {}).encode(), "application/json")
                elif file and path == "/":
                    self.answer((root / "index.html").read_bytes(), "text/html; charset=utf-8")
                elif file and file.is_file() and file.resolve().is_relative_to(root.resolve()):
                    kind = "text/javascript" if file.suffix == ".js" else "text/html; charset=utf-8"
                    self.answer(file.read_bytes(), kind)
                else:
                    query = html.escape(urllib.parse.unquote(self.path))
                    page = f"<!doctype html><title>Callback</title><h1>Callback</h1><pre id=q>{query}</pre>"
                    self.answer(page.encode(), "text/html; charset=utf-8")

            def answer(self, body: bytes, kind: str):
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def callback_site():
    site = LoopbackSite()
    yield site
    site.close()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, request):
    """A fresh browser context (no cookies, no storage) and a page in it."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.shots = Shots(request.node.name)
    yield page
    context.close()


class Shots:
    """Numbered screenshots of one test: target/e2e-screenshots/<test>-<n>-<what>.png."""

    def __init__(self, test: str):
        self.test = re.sub(r"[^A-Za-z0-9_-]+", "_", test)
        self.n = 0
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(self, page, what: str):
        self.n += 1
        page.screenshot(path=str(SCREENSHOTS / f"{self.test}-{self.n:02}-{what}.png"), full_page=True)
