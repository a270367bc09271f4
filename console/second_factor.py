"""Two-factor sign-in for operators: TOTP devices (django-otp), who must have one, and the admin login form.

Anyone with a confirmed device is asked for its code at every sign-in. With OTP_REQUIRED_FOR_OWNERS on, an
owner (or superuser) without one cannot sign in at all: a password alone must never open a console that holds
every bot token and prompt of a project. Such an owner enrols while the setting is off, or a superuser adds a
device for them under "TOTP devices" in the admin.
"""

import base64
from collections.abc import Callable
from dataclasses import dataclass

import qrcode
import qrcode.image.svg
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import logout
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.auth.signals import user_login_failed
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django_otp.plugins.otp_totp.models import TOTPDevice

from tenants.models import Membership
from tenants.roles import user_has_role

PENDING_DEVICE_NAME = "authenticator (not confirmed yet)"


class SecondFactorInvalid(ValueError):
    """The code does not match the device; the message is safe to show."""


def user_requires_second_factor(*, user: AbstractBaseUser) -> bool:
    return settings.OTP_REQUIRED_FOR_OWNERS and user_has_role(user=user, role=Membership.Role.OWNER)


def user_totp_devices(*, user: AbstractBaseUser) -> list[TOTPDevice]:
    return list(TOTPDevice.objects.devices_for_user(user, confirmed=True).order_by("pk"))


@dataclass(frozen=True)
class Enrolment:
    device: TOTPDevice
    secret_base32: str  # for typing into an app by hand
    qr_svg: str  # the otpauth:// URL as an inline SVG QR code


def totp_enrolment_start(*, user: AbstractBaseUser) -> Enrolment:
    """The user's pending (unconfirmed) device, created on first call; confirmed with a code from the app."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=PENDING_DEVICE_NAME, confirmed=False)
    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage, box_size=8)
    return Enrolment(device=device, secret_base32=_base32(device), qr_svg=image.to_string(encoding="unicode"))


def totp_enrolment_confirm(*, user: AbstractBaseUser, token: str, name: str) -> TOTPDevice:
    """Confirm the pending device with a code it produced; raises SecondFactorInvalid otherwise."""
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).order_by("pk").first()
        if device is None:
            raise SecondFactorInvalid("There is no device waiting for confirmation; reload the page.")
        if not device.verify_token(token.strip()):
            raise SecondFactorInvalid("That code does not match. Check the phone's clock and try the next code.")
        device.confirmed = True
        device.name = name.strip()[:64] or "authenticator"
        device.save(update_fields=["confirmed", "name"])
    return device


def _base32(device: TOTPDevice) -> str:
    return base64.b32encode(device.bin_key).decode().rstrip("=")


class SecondFactorLoginForm(AdminAuthenticationForm):
    """The admin login: password first (throttled by django-axes), then the code of an enrolled device."""

    otp_token = forms.CharField(
        label="Authentication code", required=False, max_length=12,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
        help_text="From your authenticator app; leave empty if you have not enrolled one.",
    )  # fmt: skip

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "token_required": "Enter the code from your authenticator app.",
        "token_invalid": "That authentication code is not valid.",
        "token_throttled": "Too many wrong codes: wait a few seconds, then enter the current code.",
        "second_factor_required": (
            "Project owners sign in with a second factor, and this account has none. Ask a superuser to add a "
            "TOTP device for you (admin → TOTP devices), then sign in with its code."
        ),
    }

    def clean(self) -> dict[str, object]:
        cleaned = super().clean()  # the password; a wrong one raises here and counts towards the lockout
        user = self.get_user()
        if user is None:
            return cleaned
        devices = user_totp_devices(user=user)
        token = (cleaned.get("otp_token") or "").strip()
        if devices:
            if not token:
                raise ValidationError(self.error_messages["token_required"], code="token_required")
            allowed = [device for device in devices if device.verify_is_allowed()[0]]
            if not allowed:  # django-otp slows down guessing: each wrong code doubles the wait
                raise ValidationError(self.error_messages["token_throttled"], code="token_throttled")
            device = next((device for device in allowed if device.verify_token(token)), None)
            if device is None:
                # A wrong code after a right password counts as a failed sign-in too (django-axes listens).
                user_login_failed.send(sender=type(self), credentials={"username": user.get_username()},
                                       request=self.request)  # fmt: skip
                raise ValidationError(self.error_messages["token_invalid"], code="token_invalid")
            user.otp_device = device  # django-otp marks the session verified when the login completes
        elif user_requires_second_factor(user=user):
            raise ValidationError(self.error_messages["second_factor_required"], code="second_factor_required")
        return cleaned


class SecondFactorRequiredMiddleware:
    """Sessions that must be verified but are not (signed in before the setting was on, or promoted to owner
    since) are signed out at their next console request and sent to the sign-in, which asks for the code."""

    EXEMPT = ("login/", "logout/", "jsi18n/")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        admin_prefix = reverse("admin:index")
        if (
            settings.OTP_REQUIRED_FOR_OWNERS
            and user is not None
            and user.is_authenticated
            and request.path.startswith(admin_prefix)
            and not request.path[len(admin_prefix) :].startswith(self.EXEMPT)
            and not user.is_verified()
            and user_requires_second_factor(user=user)
        ):
            logout(request)
            messages.warning(request, "Project owners sign in with a second factor: sign in again with your code.")
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        return self.get_response(request)
