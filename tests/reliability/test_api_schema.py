"""Schemathesis against the OpenAPI of the HTTP API: generated requests never get a server error, and every
answer is one the schema documents (status codes, content types, bodies)."""

from collections.abc import Iterator

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from bots.models import Message, TelegramUpdate
from config.api import api

pytestmark = pytest.mark.django_db

# /readyz waits for a worker that owns the Qdrant store (none runs here): tests/config/test_health.py covers it.
schema = schemathesis.openapi.from_dict(api.get_openapi_schema()).exclude(path="/readyz")
schema.app = get_wsgi_application()


@pytest.fixture(autouse=True)
def requests_keep_the_test_connection() -> Iterator[None]:
    """As Django's test client does: the WSGI app must not close the connection that holds the test transaction."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def tenant(project_a, project_b):
    """Half the generated webhook calls go to a real project with its real secret, so they get past the door."""
    return project_a


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_api_honours_its_schema(case, tenant, project_b):
    if "project_slug" in (case.path_parameters or {}) and case.path_parameters["project_slug"].endswith(("a", "e")):
        case.path_parameters["project_slug"] = tenant.slug
        case.headers = {**(case.headers or {}), "X-Telegram-Bot-Api-Secret-Token": tenant.webhook_secret}
    stored_before = (TelegramUpdate.objects.count(), Message.objects.count())
    response = case.call()
    assert response.status_code < 500, response.text
    # The schema gives an update's outline, not all of Telegram's Update: an outline-valid body that is not a
    # real update (an empty callback_query) is rightly refused with the documented 400.
    case.validate_response(response, excluded_checks=[positive_data_acceptance])
    if response.status_code != 200:
        # A refused request leaves no trace in the tenant data.
        assert (TelegramUpdate.objects.count(), Message.objects.count()) == stored_before
    # Another tenant's data never changes whatever is sent to this API.
    assert not TelegramUpdate.objects.filter(project=project_b).exists()
