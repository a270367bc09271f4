"""The generic HTTP-webhook CRM against a small real HTTP receiver: body, headers, signature, retries."""

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from leads.crm import CrmError, CrmPermanentError, http_webhook
from leads.crm.http_webhook import HttpWebhookCrm
from leads.models import CrmWebhook
from tests.infrastructure import free_port
from tests.leads.test_transcript import ALL_FILES, SHARED_CONTACT, lead_with_history

pytestmark = pytest.mark.django_db

SECRET = "whsec-alpha-0123456789-very-secret"
URL_TOKEN = "query-token-abcdef"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A CRM endpoint: records every request and answers with the scripted statuses, then 200."""

    base_url: str = ""
    requests: list[Received] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer_next(self, *statuses: int, headers: dict[str, str] | None = None) -> None:
        self.script += [(status, headers or {}) for status in statuses]

    def __call__(self, environ: dict, start_response: object) -> object:
        request = Request(environ)
        with self.lock:
            self.requests.append(Received(request.path, dict(request.headers), request.get_data()))
            status, headers = self.script.pop(0) if self.script else (200, {})
        return Response('{"ok": true}', status=status, headers=headers, mimetype="application/json")(
            environ, start_response
        )


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args: object, **kwargs: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    app = Receiver()
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_Quiet)
    app.base_url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield app
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture(autouse=True)
def sleeps(monkeypatch) -> list[float]:
    """The backoff waits, recorded instead of slept."""
    recorded: list[float] = []
    monkeypatch.setattr(http_webhook, "sleep", recorded.append)
    return recorded


@pytest.fixture
def webhook(receiver, project_a) -> CrmWebhook:
    url = f"{receiver.base_url}/hooks/crm?token={URL_TOKEN}"
    return CrmWebhook.objects.create(project=project_a, url=url, secret=SECRET)


def test_the_lead_is_posted_as_signed_json(receiver, webhook, project_a):
    lead = lead_with_history(project_a)
    crm = HttpWebhookCrm(webhook)

    refs = crm.send(lead)

    assert refs == {"status_code": 200}
    [request] = receiver.requests
    assert request.path == "/hooks/crm"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Switchboard-Event"] == "lead.created"
    assert request.headers["X-Switchboard-Delivery"] == f"{lead.pk}-webhook:{webhook.pk}"
    expected = hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-Switchboard-Signature"], f"sha256={expected}")
    body = json.loads(request.body)
    assert body == {
        "event": "lead.created",
        "lead_id": lead.pk,
        "project": "alpha",
        "status": "finished",
        "summary": lead.summary,
        "notes": "name: Anna\ncity: Berlin",
        "client_status": "hot",
        "name": "Anna",
        "city": "Berlin",
        "service": "Window cleaning",
        "contact": "phone +49 170 1234567",
        "shared_contact": SHARED_CONTACT,
        "files": ALL_FILES,
        "transcript": body["transcript"],
        "created_at": lead.created_at.isoformat(),
    }
    assert body["transcript"].startswith(f"Lead #{lead.pk}\n")
    assert "] Bot: Great, a manager will call you today." in body["transcript"]
    assert SECRET.encode() not in request.body


def test_a_signature_made_with_another_secret_does_not_verify(receiver, webhook, project_a):
    HttpWebhookCrm(webhook).send(lead_with_history(project_a))

    [request] = receiver.requests
    forged = hmac.new(b"another-secret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Switchboard-Signature"] != f"sha256={forged}"


def test_refresh_posts_an_update_with_its_own_delivery_key(receiver, webhook, project_a):
    lead = lead_with_history(project_a)
    refs = HttpWebhookCrm(webhook).send(lead)
    lead.updates_after_dispatch = 1

    new_refs = HttpWebhookCrm(webhook).refresh(lead, refs)

    created, updated = receiver.requests
    assert updated.headers["X-Switchboard-Event"] == "lead.updated"
    assert json.loads(updated.body)["event"] == "lead.updated"
    assert updated.headers["X-Switchboard-Delivery"] == f"{lead.pk}-webhook:{webhook.pk}-update-1"
    assert updated.headers["X-Switchboard-Delivery"] != created.headers["X-Switchboard-Delivery"]
    assert new_refs == {"status_code": 200}


def test_a_server_error_is_retried_with_the_same_delivery(receiver, webhook, project_a, sleeps):
    receiver.answer_next(503)
    lead = lead_with_history(project_a)

    refs = HttpWebhookCrm(webhook).send(lead)

    assert refs == {"status_code": 200}
    assert len(receiver.requests) == 2
    first, second = receiver.requests
    assert first.body == second.body
    assert first.headers["X-Switchboard-Delivery"] == second.headers["X-Switchboard-Delivery"]
    assert len(sleeps) == 1
    assert 1.0 <= sleeps[0] <= 1.1


def test_backoff_doubles_and_gives_up_after_four_attempts(receiver, webhook, project_a, sleeps):
    receiver.answer_next(500, 502, 503, 504)

    with pytest.raises(CrmError, match="gave up after 4 attempts") as failure:
        HttpWebhookCrm(webhook).send(lead_with_history(project_a))

    assert not isinstance(failure.value, CrmPermanentError)
    assert len(receiver.requests) == 4
    assert [round(wait) for wait in sleeps] == [1, 2, 4]


def test_rate_limit_honours_retry_after(receiver, webhook, project_a, sleeps):
    receiver.answer_next(429, headers={"Retry-After": "7"})

    HttpWebhookCrm(webhook).send(lead_with_history(project_a))

    assert len(receiver.requests) == 2
    assert sleeps == [7.0]


def test_a_client_error_is_permanent_after_one_attempt(receiver, webhook, project_a, sleeps):
    receiver.answer_next(400)

    with pytest.raises(CrmPermanentError, match="HTTP 400"):
        HttpWebhookCrm(webhook).send(lead_with_history(project_a))

    assert len(receiver.requests) == 1
    assert sleeps == []


def test_an_unreachable_receiver_is_retried_then_transient(project_a, sleeps):
    url = f"http://127.0.0.1:{free_port()}/hooks/crm"
    webhook = CrmWebhook.objects.create(project=project_a, url=url, secret=SECRET)

    with pytest.raises(CrmError, match="ConnectError") as failure:
        HttpWebhookCrm(webhook).send(lead_with_history(project_a))

    assert not isinstance(failure.value, CrmPermanentError)
    assert len(sleeps) == 3


def test_the_secret_and_url_token_never_reach_logs_or_errors(receiver, webhook, project_a, caplog):
    caplog.set_level(logging.DEBUG)
    receiver.answer_next(503, 503, 503, 503)

    with pytest.raises(CrmError) as failure:
        HttpWebhookCrm(webhook).send(lead_with_history(project_a))

    assert "retrying" in caplog.text
    for secret in (SECRET, URL_TOKEN):
        assert secret not in caplog.text
        assert secret not in str(failure.value)
    assert "/hooks/crm" in str(failure.value)


def test_another_projects_lead_is_refused_before_anything_is_sent(receiver, webhook, project_b):
    lead_b = lead_with_history(project_b)

    with pytest.raises(CrmPermanentError, match="does not belong"):
        HttpWebhookCrm(webhook).send(lead_b)

    assert receiver.requests == []
