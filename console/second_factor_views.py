"""The page where a signed-in operator adds a TOTP device (QR code or the secret), and confirms it with a code."""

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from console.second_factor import (
    SecondFactorInvalid,
    totp_enrolment_confirm,
    totp_enrolment_start,
    user_requires_second_factor,
    user_totp_devices,
)


def second_factor_view(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            device = totp_enrolment_confirm(
                user=request.user, token=request.POST.get("otp_token", ""), name=request.POST.get("name", "")
            )
        except SecondFactorInvalid as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, f"“{device.name}” is enrolled: sign-ins now ask for its code.")
            return HttpResponseRedirect(reverse("second_factor"))
    devices = user_totp_devices(user=request.user)
    context = {
        **admin.site.each_context(request),
        "title": "Two-factor sign-in",
        "devices": devices,
        "required": user_requires_second_factor(user=request.user),
        "enrolment": totp_enrolment_start(user=request.user),
    }
    return TemplateResponse(request, "admin/second_factor.html", context)
