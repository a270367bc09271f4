"""A worker SIGKILLed in the middle of background jobs: a lead dispatch, a qualification and a crawl.

Each job resumes on a fresh worker and ends with nothing posted twice and nothing missing.
"""

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from bots.models import Chat, Generation, Message
from bots.tasks import generations_process_due_task
from knowledge.models import Chunk, CrawlJob, Page
from knowledge.services import crawl_request
from knowledge.tasks import crawl_jobs_resume_stale
from leads.models import Lead, LeadDispatch
from leads.services import lead_finish
from leads.tasks import leads_sweep
from matching.models import Match, Profile
from tenants.models import Project
from tests.fakes import llm_api
from tests.infrastructure import dead_worker_leases_recovered
from tests.reliability.conftest import SCOREBOARD, Tally, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

LEAD_GROUP = -100500


def group_posts(fake_telegram, project: Project, method: str) -> list:
    return [c for c in fake_telegram.calls_to(method, token=project.bot_token)
            if c.ok and c.params.get("chat_id") == LEAD_GROUP]  # fmt: skip


def test_worker_killed_mid_lead_dispatch_posts_each_part_once(bots, fake_telegram, worker_factory):
    alpha, beta = bots
    Project.objects.filter(pk=alpha.pk).update(lead_group_id=LEAD_GROUP)
    alpha.refresh_from_db()
    chat = Chat.objects.create(project=alpha, telegram_chat_id=111, first_name="Anna", username="anna")
    Message.objects.create(project=alpha, chat=chat, telegram_message_id=42, text="Please call me: +1 555 0100")
    fake_telegram.push_update(alpha.bot_token, {"message": {"message_id": 42, "date": 0, "text": "Please call me",
                                                            "chat": {"id": 111, "type": "private"}}})  # fmt: skip
    # The transcript upload is rate limited for 20 s: the worker sleeps with the forward and summary posted.
    fake_telegram.fail_next("sendDocument", status=429, retry_after=20, token=alpha.bot_token)
    worker = worker_factory()
    lead, created = lead_finish(chat=chat, summary="Anna wants a window cleaning quote.")
    assert created
    fake_telegram.wait_for("sendDocument", token=alpha.bot_token, timeout=30)
    worker.kill()
    assert len(group_posts(fake_telegram, alpha, "sendMessage")) == 1

    worker = worker_factory()
    Lead.objects.filter(pk=lead.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    leads_sweep.delay()  # the beat's sweep finds the lead finished but not sent
    wait_until(lambda: Lead.objects.get(pk=lead.pk).status == Lead.Status.SENT, what="the lead sent", worker=worker)

    forwards = group_posts(fake_telegram, alpha, "forwardMessage")
    summaries = group_posts(fake_telegram, alpha, "sendMessage")
    transcripts = group_posts(fake_telegram, alpha, "sendDocument")
    SCOREBOARD.append(Tally("worker SIGKILL mid lead dispatch", 1, len(summaries), 0, len(summaries) - 1,
                            f"forwards {len(forwards)}, transcripts {len(transcripts)}"))  # fmt: skip
    assert (len(forwards), len(summaries), len(transcripts)) == (1, 1, 1)
    assert "window cleaning quote" in summaries[0].params["text"]
    dispatch = LeadDispatch.objects.get(lead=lead)
    assert dispatch.status == LeadDispatch.Status.SENT
    assert {"forwarded_message_id", "summary_message_id", "transcript_message_id"} <= set(dispatch.refs)
    assert Lead.objects.count() == 1
    assert not fake_telegram.calls_to("sendMessage", token=beta.bot_token)


def test_worker_killed_mid_qualification_introduces_both_users_once(bots, fake_telegram, fake_llm, worker):
    from tests.matching.test_qualifier import candidate_pair

    alpha, _ = bots
    Project.objects.filter(pk=alpha.pk).update(kind=Project.Kind.MATCHING)
    alpha.refresh_from_db()
    verdict = llm_api.tool_call("QualificationVerdict", {"qualified": True, "reason": "Same stack."}, delay=30.0)
    fake_llm.openai.push(verdict)
    match = candidate_pair(alpha)
    generations_process_due_task.delay()
    fake_llm.wait_for("openai", 1, timeout=30)
    worker.kill()

    fake_llm.reset()
    fake_llm.openai.responder = lambda request: llm_api.tool_call(
        "QualificationVerdict", {"qualified": True, "reason": "Same stack."}
    )
    assert dead_worker_leases_recovered() > 0
    worker.start()
    generations_process_due_task.delay()
    wait_until(lambda: Match.objects.get(pk=match.pk).status == Match.Status.QUALIFIED, what="the verdict",
               worker=worker)  # fmt: skip
    fake_telegram.wait_for("sendMessage", count=2, token=alpha.bot_token, timeout=30)
    time.sleep(1.5)

    introductions = Counter(c.params["chat_id"] for c in fake_telegram.calls_to("sendMessage", token=alpha.bot_token)
                            if c.ok and "Would you like to connect?" in c.params["text"])  # fmt: skip
    SCOREBOARD.append(Tally("worker SIGKILL mid qualification", 2, sum(introductions.values()), 0,
                            sum(introductions.values()) - len(introductions), "introductions"))  # fmt: skip
    assert introductions == {1: 1, 2: 1}
    generation = Generation.objects.get(kind=Generation.Kind.QUALIFICATION, target_id=match.pk)
    assert (generation.status, generation.attempts) == (Generation.Status.DONE, 2)
    assert Match.objects.filter(project=alpha).count() == 1
    assert Profile.objects.filter(project=alpha).count() == 2


class SlowSite:
    """Three quick pages and one that takes a few seconds: a crawl is caught in its fetch phase."""

    def __init__(self, slow_seconds: float = 4.0) -> None:
        self.hits: Counter[str] = Counter()
        site = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                site.hits[self.path] += 1
                if self.path.startswith("/slow"):
                    time.sleep(slow_seconds)
                topic = self.path.strip("/").replace("-", " ")
                body = (f"<html><head><title>{topic}</title></head><body><main><article><h1>{topic}</h1>"
                        + f"<p>All about {topic}: prices, hours and the team that does the work. " * 20
                        + "</p></article></main></body></html>").encode()  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def slow_site() -> Iterator[SlowSite]:
    site = SlowSite()
    yield site
    site.server.shutdown()
    site.server.server_close()


def test_worker_killed_mid_crawl_resumes_without_refetching_or_duplicating(bots, slow_site, worker_factory):
    alpha, _ = bots
    worker = worker_factory()
    paths = ["/window-cleaning", "/carpet-cleaning", "/opening-hours", "/slow-office-cleaning"]
    job = crawl_request(project=alpha, urls=[slow_site.base + path for path in paths])
    wait_until(lambda: Page.objects.filter(job=job, fetched_at__isnull=False).count() == 3 and slow_site.hits[paths[3]],
               what="the quick pages fetched", worker=worker)  # fmt: skip
    worker.kill()
    assert CrawlJob.objects.get(pk=job.pk).status == CrawlJob.Status.RUNNING

    worker = worker_factory()
    CrawlJob.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=10))
    crawl_jobs_resume_stale.delay()  # the beat's sweep
    wait_until(lambda: CrawlJob.objects.get(pk=job.pk).status == CrawlJob.Status.DONE, timeout=120,
               what="the resumed crawl done", worker=worker)  # fmt: skip

    job.refresh_from_db()
    assert (job.pages_done, job.pages_failed) == (4, 0)
    assert [slow_site.hits[path] for path in paths] == [1, 1, 1, 2]  # only the interrupted page again
    for page in Page.objects.filter(job=job):
        indexes = list(Chunk.objects.filter(page=page).values_list("index", flat=True))
        assert indexes, page.url
        assert sorted(indexes) == list(range(len(indexes))), page.url
    assert not Chunk.objects.filter(project=alpha, uploaded_at__isnull=True).exists()
    SCOREBOARD.append(Tally("worker SIGKILL mid crawl", 4, job.pages_done, 4 - job.pages_done, 0,
                            "pages; only the interrupted page fetched again"))  # fmt: skip
