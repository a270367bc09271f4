"""`manage.py second_factor USERNAME`: enrol an authenticator app from the shell (the first superuser of a
deployment with OTP_REQUIRED_FOR_OWNERS on has no other way in)."""

import io
from typing import Any

import qrcode
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from console.second_factor import SecondFactorInvalid, totp_enrolment_confirm, totp_enrolment_start, user_totp_devices


class Command(BaseCommand):
    help = "Add a TOTP device to a user: shows a QR code and the secret, then asks for a code from the app."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="authenticator", help="What to call the device.")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"no user {options['username']!r}")
        enrolment = totp_enrolment_start(user=user)
        code = qrcode.QRCode(border=1)
        code.add_data(enrolment.device.config_url)
        picture = io.StringIO()
        code.print_ascii(out=picture, invert=True)
        self.stdout.write(picture.getvalue())
        self.stdout.write(f"secret (to type in instead): {enrolment.secret_base32}")
        token = input("code shown by the app: ")
        try:
            device = totp_enrolment_confirm(user=user, token=token, name=options["name"])
        except SecondFactorInvalid as exc:
            raise CommandError(str(exc)) from None
        count = len(user_totp_devices(user=user))
        self.stdout.write(self.style.SUCCESS(f"{user.get_username()}: {device.name} enrolled ({count} device(s))"))
