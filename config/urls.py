from django.contrib import admin
from django.urls import path

from config.api import api
from console.second_factor import SecondFactorLoginForm
from console.second_factor_views import second_factor_view

# The admin's sign-in asks for a TOTP code (django-otp) after the password (throttled by django-axes).
admin.site.login_form = SecondFactorLoginForm
admin.site.login_template = "admin/second_factor_login.html"

urlpatterns = [
    path("admin/second-factor/", admin.site.admin_view(second_factor_view), name="second_factor"),
    path("admin/", admin.site.urls),
    path("", api.urls),
]
