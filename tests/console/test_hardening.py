"""The hardened console: sign-in throttling, a second factor for owners, the project history, security headers."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from console.second_factor import totp_enrolment_start
from tenants.models import Membership, Project
from tenants.services import project_set
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

PASSWORD = "operator-password"
LOGIN = "/admin/login/?next=/admin/"


def sign_in(client: Client, username: str, password: str = PASSWORD, code: str = "", address: str = "10.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password, "otp_token": code}, REMOTE_ADDR=address)


def signed_in(client: Client) -> bool:
    return client.get("/admin/", REMOTE_ADDR="10.0.0.1").status_code == 200


def current_code(device: TOTPDevice, steps_ahead: int = 0) -> str:
    """The code the user's app shows; `steps_ahead=1` the next one (a code is accepted once, one step early too)."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps_ahead * device.step
    return f"{totp.token():0{device.digits}d}"


def confirmed_device(user) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


# --- throttling ----------------------------------------------------------------------------------------------------


def test_ten_wrong_passwords_lock_the_account_even_for_the_right_password(project_a, project_b):
    olga = MembershipFactory(project=project_a, user__username="olga").user
    MembershipFactory(project=project_b, user__username="boris")
    for _ in range(9):
        assert sign_in(Client(), "olga", "wrong", address="10.0.0.7").status_code == 200  # the form, with its error
    locked = sign_in(Client(), "olga", "wrong", address="10.0.0.8")  # the tenth, from another address
    assert locked.status_code == 429
    client = Client()
    refused = sign_in(client, "olga", address="10.0.0.9")  # the right password from a third address
    assert refused.status_code == 429
    assert "Too many failed sign-ins" in refused.content.decode()
    assert not signed_in(client)
    assert olga.is_active
    # Another operator from an untouched address still signs in.
    other = Client()
    assert sign_in(other, "boris", address="10.0.0.20").status_code == 302
    assert signed_in(other)


# --- the second factor ---------------------------------------------------------------------------------------------


def test_an_owner_without_a_second_factor_cannot_sign_in_when_it_is_required(project_a, settings):
    settings.OTP_REQUIRED_FOR_OWNERS = True
    MembershipFactory(project=project_a, role=Membership.Role.OWNER, user__username="owen")
    MembershipFactory(project=project_a, role=Membership.Role.OPERATOR, user__username="olga")
    client = Client()
    response = sign_in(client, "owen")
    assert response.status_code == 200
    assert "Project owners sign in with a second factor" in response.content.decode()
    assert not signed_in(client)
    # An operator is not an owner: the password is enough for them.
    operator = Client()
    assert sign_in(operator, "olga").status_code == 302
    assert signed_in(operator)
    # With the setting off the owner's password is enough, too.
    settings.OTP_REQUIRED_FOR_OWNERS = False
    assert sign_in(client, "owen").status_code == 302


def test_an_enrolled_user_signs_in_only_with_a_valid_code(project_a, settings):
    settings.OTP_REQUIRED_FOR_OWNERS = True
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # django-otp's growing wait after a wrong code is not under test here
    owner = MembershipFactory(project=project_a, role=Membership.Role.OWNER, user__username="owen").user
    device = confirmed_device(owner)
    client = Client()
    assert "Enter the code from your authenticator app" in sign_in(client, "owen").content.decode()
    assert (
        "not valid"
        in sign_in(client, "owen", code="000000" if current_code(device) != "000000" else "111111").content.decode()
    )
    assert not signed_in(client)
    assert sign_in(client, "owen", code=current_code(device)).status_code == 302
    assert signed_in(client)
    assert client.session["otp_device_id"] == device.persistent_id


def test_a_session_without_the_second_factor_is_signed_out_once_it_is_required(project_a, settings):
    owner = MembershipFactory(project=project_a, role=Membership.Role.OWNER, user__username="owen").user
    client = Client()
    client.force_login(owner)  # signed in with the password alone, while the setting was off
    assert client.get("/admin/").status_code == 200
    settings.OTP_REQUIRED_FOR_OWNERS = True
    response = client.get(reverse("admin:tenants_project_change", args=[project_a.pk]))
    assert response.status_code == 302
    assert response.url.startswith("/admin/login/")
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302


def test_enrolment_shows_a_qr_code_and_the_secret_and_confirms_with_a_code(project_a, project_b):
    olga = MembershipFactory(project=project_a, user__username="olga").user
    client = Client()
    client.force_login(olga)
    page = client.get(reverse("second_factor")).content.decode()
    assert "<svg" in page
    pending = TOTPDevice.objects.get(user=olga, confirmed=False)
    assert totp_enrolment_start(user=olga).secret_base32 in page
    refused = client.post(reverse("second_factor"), {"otp_token": "12", "name": "phone"}, follow=True)
    assert "does not match" in refused.content.decode()
    assert not TOTPDevice.objects.filter(user=olga, confirmed=True).exists()
    client.post(reverse("second_factor"), {"otp_token": current_code(pending), "name": "my phone"})
    pending.refresh_from_db()
    assert pending.confirmed
    assert pending.name == "my phone"
    assert "my phone" in client.get(reverse("second_factor")).content.decode()


# --- the project history -------------------------------------------------------------------------------------------


def test_a_prompt_change_shows_as_a_diff_and_reverts_and_other_tenants_history_is_hidden(project_a, project_b):
    operator = MembershipFactory(project=project_a, user__username="olga").user
    project_set(project=project_a, key="prompt", value="You sell windows.\nBe brief.")
    project_set(project=project_a, key="prompt", value="You sell doors.\nBe brief.")
    project_set(project=project_a, key="webhook_secret", value="a-new-webhook-secret-value-123")
    project_set(project=project_b, key="prompt", value="Beta's private prompt")
    client = Client()
    client.force_login(operator)
    history = client.get(reverse("admin:tenants_project_history", args=[project_a.pk])).content.decode()
    assert '<span class="history-old">-You sell windows.</span>' in history
    assert '<span class="history-new">+You sell doors.</span>' in history
    assert "a-new-webhook-secret-value-123" not in history
    assert "Beta&#x27;s private prompt" not in history
    other = client.get(reverse("admin:tenants_project_history", args=[project_b.pk]))
    assert other.status_code == 302  # as if it did not exist
    assert "Beta" not in client.get(other.url).content.decode()

    windows = project_a.history.filter(prompt="You sell windows.\nBe brief.").get()
    form_url = reverse("admin:tenants_project_simple_history", args=[project_a.pk, windows.history_id])
    form = client.get(form_url)
    assert form.status_code == 200
    post = {key: value for key, value in form.context["adminform"].form.initial.items() if value is not None}
    post.update({"prompt": "You sell windows.\nBe brief.", "followup_steps": "300, 900, 2400, 86400",
                 "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"})  # fmt: skip
    response = client.post(form_url, post)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    project_a.refresh_from_db()
    assert project_a.prompt == "You sell windows.\nBe brief."
    assert project_a.webhook_secret == "a-new-webhook-secret-value-123"  # not part of the history: untouched
    assert project_a.history.first().prompt == "You sell windows.\nBe brief."
    foreign = project_b.history.first()
    hidden = client.get(reverse("admin:tenants_project_simple_history", args=[project_b.pk, foreign.history_id]))
    assert hidden.status_code == 302


def test_a_viewer_sees_the_history_but_cannot_revert(project_a):
    viewer = MembershipFactory(project=project_a, role=Membership.Role.VIEWER).user
    project_set(project=project_a, key="prompt", value="first")
    project_set(project=project_a, key="prompt", value="second")
    client = Client()
    client.force_login(viewer)
    assert client.get(reverse("admin:tenants_project_history", args=[project_a.pk])).status_code == 200
    first = project_a.history.filter(prompt="first").get()
    client.post(reverse("admin:tenants_project_simple_history", args=[project_a.pk, first.history_id]),
                {"prompt": "first"})  # fmt: skip
    assert Project.objects.get(pk=project_a.pk).prompt == "second"


# --- headers and the deployment check ------------------------------------------------------------------------------


def test_admin_pages_carry_a_content_security_policy_and_security_headers(admin_client, project_a):
    response = admin_client.get(reverse("admin:tenants_project_change", args=[project_a.pk]))
    policy = response.headers["Content-Security-Policy"]
    for directive in ("default-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "form-action 'self'"):
        assert directive in policy
    assert "cdn" not in policy
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


def test_check_deploy_is_clean_with_the_production_settings():
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ, "DJANGO_PRODUCTION": "true", "DJANGO_SECRET_KEY": "k" * 20 + "production-secret-key-0123456789",
        "ALLOWED_HOSTS": "bots.example.com", "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none",
    }  # fmt: skip
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_shell_enrols_a_device_for_the_first_superuser(django_user_model, monkeypatch, capsys):
    admin = django_user_model.objects.create_superuser("root", password=PASSWORD)
    pending: list[TOTPDevice] = []

    def answer(prompt: str) -> str:
        pending.append(TOTPDevice.objects.get(user=admin, confirmed=False))
        return current_code(pending[0])

    monkeypatch.setattr("builtins.input", answer)
    call_command("second_factor", "root", "--name", "ops phone")
    out = capsys.readouterr().out
    assert "secret (to type in instead)" in out
    assert "root: ops phone enrolled (1 device(s))" in out
    assert TOTPDevice.objects.get(user=admin).confirmed
