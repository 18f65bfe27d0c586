"""Registers, at the running Hallpass, the public client the beer locker's Swagger UI signs
in with (redirect URI `<locker>/docs/oauth2-redirect.html`: the README's one setup step for
the beer locker's /docs), owned by a fresh user. Prints its client id. Used by run.sh."""

import base64
import json
import os
import secrets
import urllib.request

HALLPASS, LOCKER = os.environ["E2E_HALLPASS"], os.environ["E2E_LOCKER"]


def post(path: str, body: dict, basic: tuple[str, str] | None = None) -> dict:
    req = urllib.request.Request(HALLPASS + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    if basic:
        req.add_header("Authorization", "Basic " + base64.b64encode(":".join(basic).encode()).decode())
    with urllib.request.urlopen(req) as r:
        return json.load(r)


owner = ("docs-owner", secrets.token_urlsafe(16))
post("/api/users", {"username": owner[0], "password": owner[1]})
client = post(
    "/api/clients",
    {
        "client_name": "Beer locker API documentation",
        "redirect_uris": [f"{LOCKER}/docs/oauth2-redirect.html"],
        "token_endpoint_auth_method": "none",
    },
    owner,
)
print(client["client_id"])
