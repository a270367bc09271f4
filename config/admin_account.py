"""The first-run superuser: created once, its password kept in var/ so every run can print it."""

import secrets
from dataclasses import dataclass
from pathlib import Path

from django.contrib.auth import get_user_model

ADMIN_USERNAME = "admin"


@dataclass(frozen=True)
class AdminCredentials:
    username: str
    password: str | None  # None: the account existed before and its password is not ours to know


def admin_ensure(*, var_dir: Path) -> AdminCredentials:
    password_file = var_dir / "admin_password"
    user_model = get_user_model()
    if user_model.objects.filter(username=ADMIN_USERNAME).exists():
        known = password_file.read_text().strip() if password_file.exists() else None
        return AdminCredentials(ADMIN_USERNAME, known)
    password = secrets.token_urlsafe(12)
    user_model.objects.create_superuser(ADMIN_USERNAME, email="", password=password)
    var_dir.mkdir(parents=True, exist_ok=True)
    password_file.write_text(password)
    password_file.chmod(0o600)
    return AdminCredentials(ADMIN_USERNAME, password)
