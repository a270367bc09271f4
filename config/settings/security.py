import base64
import hashlib
import secrets
from datetime import timedelta

from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from config.env import VAR_DIR, env


def _local_secret_key() -> str:
    """A per-checkout secret kept in var/, so a laptop run needs no configuration and stays stable."""
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or _local_secret_key()
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

# Fernet key for bot tokens at rest. Unset: derived from SECRET_KEY (fine for a laptop; production
# sets its own so that rotating the Django secret does not make tokens unreadable).
FIELD_ENCRYPTION_KEY = (
    env.str("FIELD_ENCRYPTION_KEY", default="")
    or base64.urlsafe_b64encode(hashlib.sha256(f"field-encryption:{SECRET_KEY}".encode()).digest()).decode()
)

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# --- Production: DJANGO_PRODUCTION=true behind an HTTPS reverse proxy ---------------------------------------------
# One switch turns on what `manage.py check --deploy` asks for; each part can still be set on its own.
PRODUCTION = env.bool("DJANGO_PRODUCTION", default=False)
if PRODUCTION and not env.str("DJANGO_SECRET_KEY", default=""):
    raise ImproperlyConfigured("DJANGO_PRODUCTION=true needs DJANGO_SECRET_KEY (the same on every host)")
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured("DJANGO_PRODUCTION=true and DJANGO_DEBUG=true do not go together")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
# The load balancer's probes and Prometheus may speak plain HTTP inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
if env.bool("TRUST_X_FORWARDED_PROTO", default=PRODUCTION):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=PRODUCTION)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=PRODUCTION)
# The preload flag only allows submitting the domain to the browsers' list; nothing is submitted by itself.
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=PRODUCTION)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=12 * 3600)  # an operator signs in once a working day

# --- Content Security Policy (django-csp) -------------------------------------------------------------------------
# Everything from our own origin, nothing from elsewhere: no CDN, no third-party frames, no plug-ins, forms post
# only here. The admin's templates keep a few inline handlers and styles, hence 'unsafe-inline' for those two;
# an admin theme that evaluates strings (Alpine.js) needs "'unsafe-eval'" added through CSP_SCRIPT_SRC.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": env.list("CSP_SCRIPT_SRC", default=[SELF, UNSAFE_INLINE]),
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    }
}

# --- Sign-in: throttling (django-axes) and a second factor (django-otp, TOTP) -------------------------------------
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=30))
# Either criterion locks: one account tried from anywhere, or one address trying any account.
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "admin/locked_out.html"
AXES_VERBOSE = False
# Owners (and superusers) hold every token and prompt of their projects: with this on they must sign in with a
# code from an authenticator app. Everyone who has enrolled a device is asked for its code in any case.
OTP_REQUIRED_FOR_OWNERS = env.bool("OTP_REQUIRED_FOR_OWNERS", default=PRODUCTION)
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Switchboard")

# --- Change history (django-simple-history) -----------------------------------------------------------------------
SIMPLE_HISTORY_REVERT_DISABLED = False
