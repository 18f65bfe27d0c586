"""Item 6 of issue 9: browser tests with Playwright and Debian's Chromium. The sign-in and
consent pages (allow and deny), Swagger UI's Authorize and "Try it out" on both services, and
a single-page app on another loopback origin that runs the code flow + PKCE with fetch. Every
page visited is kept as a screenshot in target/e2e-screenshots/."""

import re
import urllib.parse
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

import conftest
from conftest import HALLPASS, LOCKER, OTHER_ORIGIN, SPA_ORIGIN, LoopbackSite, authorize_url, pkce


def sign_in(page: Page, user: tuple[str, str]):
    expect(page.get_by_label("Username")).to_be_visible()
    page.shots.take(page, "sign-in")
    page.get_by_label("Username").fill(user[0])
    page.get_by_label("Password").fill(user[1])
    page.get_by_role("button", name="Sign in").click()


def consent(page: Page, decision: str):
    button = page.get_by_role("button", name=decision)
    expect(button).to_be_visible()
    page.shots.take(page, "consent")
    button.click()


def query_of(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


@pytest.mark.parametrize("decision", ["Allow", "Deny"])
def test_sign_in_and_consent_in_a_browser_send_the_answer_to_the_redirect_uri(page, callback_site, decision):
    user = conftest.new_user()
    redirect_uri = f"{callback_site.origin}/cb"
    client = conftest.new_client(user, client_name="Browser Test App", redirect_uris=[redirect_uri])
    verifier, challenge = pkce()

    page.goto(authorize_url(client["client_id"], redirect_uri, "openid beers:read", challenge, "st-1"))
    sign_in(page, user)
    expect(page.get_by_text("Browser Test App").first).to_be_visible()
    consent(page, decision)
    page.wait_for_url(f"{callback_site.origin}/cb?*")
    expect(page.locator("#q")).to_contain_text("state=st-1")
    page.shots.take(page, "callback")

    got = query_of(page.url)
    arrived = [r for r in callback_site.requests if r.startswith("/cb?")]
    assert len(arrived) == 1 and query_of(arrived[0]) == got
    assert got["state"] == "st-1" and got["iss"] == HALLPASS
    if decision == "Deny":
        assert got["error"] == "access_denied" and "code" not in got
        return
    redeemed = httpx.post(
        f"{HALLPASS}/oauth2/token",
        auth=(client["client_id"], client["client_secret"]),
        data={"grant_type": "authorization_code", "code": got["code"], "redirect_uri": redirect_uri, "code_verifier": verifier},
    )
    assert redeemed.status_code == 200, redeemed.text
    assert redeemed.json()["scope"] == "beers:read openid"


# --- Swagger UI ----------------------------------------------------------------------------


def swagger_sign_in(page: Page, docs: str, user: tuple[str, str]):
    """/docs → Authorize → (popup) Hallpass sign-in → consent → back in Swagger UI."""
    page.goto(docs)
    expect(page.locator(".swagger-ui .information-container")).to_be_visible()
    page.shots.take(page, "docs")
    page.locator("button.authorize").first.click()
    dialog = page.locator(".modal-ux")
    expect(dialog).to_be_visible()
    # The authorization-code flow's box (a client-credentials box may be there too); its
    # client id and scopes come pre-filled from the page's initOAuth.
    oauth = dialog.locator(".auth-container").filter(has_text="authorizationCode").first
    expect(oauth).to_be_visible()
    page.shots.take(page, "authorize-dialog")
    with page.expect_popup() as popup_info:
        oauth.locator("button.authorize").click()
    popup = popup_info.value
    popup.shots = page.shots
    sign_in(popup, user)
    if not popup.is_closed():
        allow = popup.get_by_role("button", name="Allow")
        allow.wait_for()
        popup.shots.take(popup, "consent")
        allow.click()
    popup.wait_for_event("close")
    expect(dialog.locator(".auth-container button", has_text="Logout").first).to_be_visible()
    page.shots.take(page, "authorized")
    page.locator("button.close-modal").click()


def try_it_out(page: Page, method: str, path: str) -> str:
    """Opens the operation, "Try it out" → "Execute"; returns the status Swagger UI shows."""
    op = page.locator(f".opblock-{method.lower()}").filter(
        has=page.locator(f'.opblock-summary-path[data-path="{path}"]')
    ).first
    op.locator(".opblock-summary").click()
    op.get_by_role("button", name="Try it out").click()
    op.get_by_role("button", name="Execute").click()
    status = op.locator(".live-responses-table tbody .response-col_status").first
    expect(status).to_have_text(re.compile(r"\d{3}"))
    op.scroll_into_view_if_needed()
    page.shots.take(page, f"try-{method.lower()}")
    return status.inner_text().strip()


def test_swagger_ui_on_hallpass_signs_in_and_try_it_out_reads_the_current_user(page):
    user = conftest.new_user()

    swagger_sign_in(page, f"{HALLPASS}/docs", user)
    status = try_it_out(page, "GET", "/api/users/me")

    assert status == "200"


def test_swagger_ui_on_the_beer_locker_signs_in_at_hallpass_and_try_it_out_lists_beers(page):
    user = conftest.new_user()

    swagger_sign_in(page, f"{LOCKER}/docs", user)
    status = try_it_out(page, "GET", "/api/beers")

    assert status == "200"


# --- A single-page app on another origin ---------------------------------------------------


SPA_FILES = Path(__file__).parent / "spa"


@pytest.fixture
def spa_client():
    """A user and a public client (PKCE, no secret) whose redirect URI is on the SPA origin."""
    user = conftest.new_user()
    client = conftest.new_client(
        user,
        client_name="Beer SPA",
        redirect_uris=[f"{SPA_ORIGIN}/"],
        token_endpoint_auth_method="none",
    )
    return user, client


def spa_site(origin: str, client: dict) -> LoopbackSite:
    config = {
        "hallpass": HALLPASS,
        "locker": LOCKER,
        "client_id": client["client_id"],
        "redirect_uri": client["redirect_uris"][0],
        "scope": "beers:read beers:write",
    }
    return LoopbackSite(port=int(origin.rsplit(":", 1)[1]), root=SPA_FILES, config=config)


def test_a_single_page_app_on_another_origin_signs_in_with_pkce_and_calls_the_beer_locker(page, spa_client):
    user, client = spa_client
    site = spa_site(SPA_ORIGIN, client)
    try:
        page.goto(f"{SPA_ORIGIN}/")
        expect(page.locator("body[data-state=ready]")).to_be_attached()
        page.shots.take(page, "spa")
        page.get_by_role("button", name="Sign in with Hallpass").click()
        sign_in(page, user)
        consent(page, "Allow")
        page.wait_for_url(f"{SPA_ORIGIN}/*")
        expect(page.locator("body[data-state]:not([data-state=ready])")).to_be_attached()
        page.shots.take(page, "spa-signed-in")
        result = page.locator("#out").inner_text()
    finally:
        site.close()

    assert '"state": "done"' in result, result
    assert '"created": 201' in result and '"list": 200' in result
    assert "Rochefort 10" in result


def test_a_token_request_from_an_origin_the_client_does_not_allow_is_refused_and_keeps_the_code(page, spa_client):
    user, client = spa_client
    code, verifier = conftest.code_without_browser(user, client, "beers:read beers:write")
    other, own = spa_site(OTHER_ORIGIN, client), spa_site(SPA_ORIGIN, client)
    try:
        page.goto(f"{OTHER_ORIGIN}/")
        expect(page.locator("body[data-state=ready]")).to_be_attached()
        refused = page.evaluate(
            "([c, v]) => spa.redeem(c, v).then(r => 'answered ' + r.status, e => 'refused: ' + e)", [code, verifier]
        )
        page.shots.take(page, "other-origin")
        page.goto(f"{SPA_ORIGIN}/")
        expect(page.locator("body[data-state=ready]")).to_be_attached()
        redeemed = page.evaluate("([c, v]) => spa.redeem(c, v)", [code, verifier])
        beers_elsewhere = None
        page.goto(f"{OTHER_ORIGIN}/")
        expect(page.locator("body[data-state=ready]")).to_be_attached()
        beers_elsewhere = page.evaluate(
            "(t) => spa.beers(t).then(r => 'answered ' + r.list, e => 'refused: ' + e)", redeemed["body"].get("access_token", "")
        )
    finally:
        other.close()
        own.close()

    # The browser hides the answer from the other origin, and the server did not spend the code.
    assert refused.startswith("refused: TypeError"), refused
    assert redeemed["status"] == 200, redeemed
    # The beer locker does not answer the other origin either.
    assert beers_elsewhere.startswith("refused: TypeError"), beers_elsewhere


def test_a_client_that_lists_another_origin_in_allowed_cors_origins_is_answered_there(page):
    user = conftest.new_user()
    client = conftest.new_client(
        user,
        client_name="Beer SPA",
        redirect_uris=[f"{SPA_ORIGIN}/"],
        token_endpoint_auth_method="none",
        allowed_cors_origins=[OTHER_ORIGIN],
    )
    code, verifier = conftest.code_without_browser(user, client, "beers:read")
    other = spa_site(OTHER_ORIGIN, client)
    try:
        page.goto(f"{OTHER_ORIGIN}/")
        expect(page.locator("body[data-state=ready]")).to_be_attached()
        redeemed = page.evaluate("([c, v]) => spa.redeem(c, v)", [code, verifier])
        page.shots.take(page, "listed-origin")
    finally:
        other.close()

    assert redeemed["status"] == 200, redeemed
    assert redeemed["body"]["scope"] == "beers:read"
