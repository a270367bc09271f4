"""The hardened console in a real browser: the lockout, the second factor for owners, a prompt's history and revert."""

import re

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants.models import Membership, Project
from tests.console.browser import PASSWORD, log_in, screenshot
from tests.console.test_hardening import current_code
from tests.factories import MembershipFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def csp_violations(page) -> list[str]:
    """What Chromium reports as blocked by the Content-Security-Policy: the pages must work under it."""
    found: list[str] = []
    page.on(
        "console", lambda message: found.append(message.text) if "Content Security Policy" in message.text else None
    )
    return found


def try_sign_in(page, username: str, password: str, code: str = "") -> None:
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    if code:
        page.fill("#id_otp_token", code)
    page.click("[type=submit]")
    page.wait_for_load_state()


def test_ten_wrong_passwords_lock_the_login(page, project_a, project_b, csp_violations):
    MembershipFactory(project=project_a, user__username="olga")
    for attempt in range(9):
        try_sign_in(page, "olga", f"wrong-{attempt}")
        assert "Please enter the correct username and password" in page.inner_text("body")
    screenshot(page, "security-wrong-password.png")
    try_sign_in(page, "olga", "wrong-9")
    assert "Too many failed sign-ins" in page.inner_text("body")
    try_sign_in(page, "olga", PASSWORD)  # the right password no longer opens it
    assert "Too many failed sign-ins" in page.inner_text("body")
    screenshot(page, "security-locked-out.png")
    page.goto("/admin/")
    assert "/admin/login/" in page.url
    assert not csp_violations


def test_an_owner_without_a_second_factor_cannot_sign_in_then_enrols_and_signs_in_with_a_code(
    page, project_a, project_b, settings, csp_violations
):
    owner = MembershipFactory(project=project_a, role=Membership.Role.OWNER, user__username="owen").user
    settings.OTP_REQUIRED_FOR_OWNERS = True
    try_sign_in(page, "owen", PASSWORD)
    assert "Project owners sign in with a second factor" in page.inner_text("body")
    assert "/admin/login/" in page.url
    screenshot(page, "security-owner-needs-second-factor.png")
    page.goto("/admin/tenants/project/")
    assert "/admin/login/" in page.url  # not signed in

    # While the setting is off the owner enrols an authenticator on their own page.
    settings.OTP_REQUIRED_FOR_OWNERS = False
    log_in(page, "owen")
    page.goto("/admin/second-factor/")
    assert page.locator("#totp-qr svg").count() == 1
    secret = page.inner_text("#totp-secret")
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    screenshot(page, "security-enrol-second-factor.png")
    pending = TOTPDevice.objects.get(user=owner, confirmed=False)
    page.fill("#id_name", "owen's phone")
    page.fill("#id_otp_token", current_code(pending))
    page.click("#second-factor-form [type=submit]")
    page.wait_for_selector(".messagelist .success")
    assert "owen's phone" in page.inner_text("#second-factor-devices")
    page.context.clear_cookies()  # signed out

    settings.OTP_REQUIRED_FOR_OWNERS = True
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    try_sign_in(page, "owen", PASSWORD)  # the password alone is not enough any more
    assert "Enter the code from your authenticator app" in page.inner_text("body")
    device = TOTPDevice.objects.get(user=owner, confirmed=True)
    device.refresh_from_db()
    # The code that confirmed the device cannot be used again (replay): the app's next one signs in.
    try_sign_in(page, "owen", PASSWORD, code=current_code(device, steps_ahead=1))
    page.wait_for_url("**/admin/")
    assert "Projects" in page.inner_text("body")
    screenshot(page, "security-signed-in-with-code.png")
    assert not csp_violations


OLD_PROMPT = "You sell window cleaning.\nAlways quote per window."


def normalised(text: str) -> str:
    return text.replace("\r\n", "\n")  # a browser posts a textarea's lines with CRLF; the text is the same


def test_a_prompt_edit_shows_in_its_history_and_reverts(page, project_a, project_b, csp_violations):
    MembershipFactory(project=project_a, role=Membership.Role.OPERATOR, user__username="olga")
    project_a.prompt = OLD_PROMPT
    project_a.save()
    log_in(page, "olga")
    page.goto(f"/admin/tenants/project/{project_a.pk}/change/")
    page.fill("#id_prompt", "You sell door repairs.\nAlways quote per window.")
    page.click("[name=_continue]")
    page.wait_for_selector(".messagelist .success")
    assert Project.objects.get(pk=project_a.pk).prompt.startswith("You sell door repairs.")

    page.click(f'a[href$="/tenants/project/{project_a.pk}/history/"]')
    page.wait_for_selector("#change-history")
    history = page.inner_text("#change-history")
    assert "-You sell window cleaning." in history
    assert "+You sell door repairs." in history
    assert "olga" in history
    assert "Edited in the console" in history  # the change reason, not "None"
    screenshot(page, "security-project-history.png")

    # The second row is the version before the edit: its form shows the old prompt, and Revert saves it.
    page.locator("#change-history tbody tr").nth(1).locator("a").first.click()
    revert = page.locator("button[name=_save]", has_text="Revert")
    revert.wait_for()
    # The theme's submit row sits outside the <form>: the button names the form it submits.
    assert page.locator(f"form#{revert.get_attribute('form')} #id_prompt").count() == 1
    assert normalised(page.input_value("#id_prompt")) == OLD_PROMPT
    screenshot(page, "security-revert-form.png")
    revert.click()
    page.wait_for_selector(".messagelist .success")
    assert "was changed successfully" in page.inner_text(".messagelist")
    reverted = Project.objects.get(pk=project_a.pk)
    assert normalised(reverted.prompt) == OLD_PROMPT
    assert reverted.bot_token == project_a.bot_token  # the write-only token survived the revert
    page.goto(f"/admin/tenants/project/{project_a.pk}/change/")
    assert normalised(page.input_value("#id_prompt")) == OLD_PROMPT
    screenshot(page, "security-after-revert.png")
    page.goto(f"/admin/tenants/project/{project_a.pk}/history/")
    newest = page.inner_text("#change-history tbody tr >> nth=0")  # the revert is a change in the history too
    assert "-You sell door repairs." in newest
    assert "+You sell window cleaning." in newest
    assert "olga" in newest
    assert "Reverted in the console" in newest
    screenshot(page, "security-project-history-reverted.png")
    page.goto(f"/admin/tenants/project/{project_b.pk}/history/")  # the other tenant's history: as if missing
    assert page.url.endswith("/admin/")
    assert "doesn’t exist" in page.inner_text(".messagelist")
    assert "Beta" not in page.inner_text("body")
    assert not csp_violations
