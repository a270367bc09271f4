"""A scheduled re-crawl on the real worker: after the site's price changes and the hour passes, the bot
answers the new price; a tenant without a schedule keeps its own knowledge."""

import json
import time
from datetime import timedelta

import pytest
from django.db.models import F
from django.test import Client

from knowledge.models import CrawlJob, Source
from knowledge.services import crawl_request
from knowledge.tasks import crawl_schedules_sweep, knowledge_search_task
from tests.fakes import llm_api
from tests.telegram_updates import text_update

pytestmark = pytest.mark.django_db(transaction=True)

OLD_PRICE, NEW_PRICE = "7 dollars per window", "9 dollars per window"


def wait_until(predicate, timeout: float, what: str, worker) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n{worker.log_tail()}")


def finished(job: CrawlJob) -> bool:
    return CrawlJob.objects.get(pk=job.pk).is_finished


def test_the_bot_answers_the_new_price_after_the_scheduled_run(
    client: Client, project_a, project_b, local_site, fake_telegram, fake_llm, celery_worker
):
    fake_telegram.register_bot(project_a.bot_token, "alpha_bot")
    first = crawl_request(project=project_a, sitemap=local_site.url("sitemap.xml"), schedule="hourly")
    other = crawl_request(project=project_b, urls=[local_site.url("en/prices.html")])  # no schedule
    for job in (first, other):
        wait_until(lambda job=job: finished(job), 90, "first crawls", celery_worker)
    assert CrawlJob.objects.get(pk=first.pk).status == "done"
    local_site.edit("en/prices.html", OLD_PRICE, NEW_PRICE)

    crawl_schedules_sweep.apply()  # what beat runs every minute (here in-process): nothing is due yet
    assert CrawlJob.objects.count() == 2

    # An hour passes: the source's last crawl was queued more than its interval ago.
    Source.objects.filter(project=project_a).update(last_queued_at=F("last_queued_at") - timedelta(minutes=61))
    Source.objects.filter(project=project_b).update(last_queued_at=F("last_queued_at") - timedelta(days=30))
    crawl_schedules_sweep.delay()
    wait_until(lambda: CrawlJob.objects.filter(scheduled=True).exists(), 30, "scheduled job", celery_worker)
    scheduled = CrawlJob.objects.get(scheduled=True)
    wait_until(lambda: finished(scheduled), 90, "scheduled crawl", celery_worker)
    scheduled.refresh_from_db()
    assert scheduled.project == project_a
    assert scheduled.status == "done", scheduled.error
    assert (scheduled.pages_changed, scheduled.pages_unchanged, scheduled.chunks_embedded > 0) == (1, 3, True)
    assert Source.objects.get(project=project_a).last_refreshed_at >= scheduled.started_at

    fake_llm.openai.push(
        llm_api.tool_call("hybrid_search", {"query": "window washing price"}),
        llm_api.text("Window washing costs 9 dollars per window."),
    )
    response = client.post(
        f"/telegram/webhook/{project_a.slug}/", data=json.dumps(text_update(11, "How much is window washing?")),
        content_type="application/json", HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=project_a.webhook_secret,
    )  # fmt: skip
    assert response.status_code == 200
    wait_until(lambda: len(fake_llm.requests_to("openai")) >= 2, 30, "the bot's second model call", celery_worker)
    tool_result = fake_llm.requests_to("openai")[1].body["messages"][-1]
    assert tool_result["role"] == "tool"
    assert NEW_PRICE in tool_result["content"]
    assert OLD_PRICE not in tool_result["content"]
    # The tenant without a schedule was not re-crawled and still knows the old price.
    hits = knowledge_search_task.delay(project_b.pk, "window washing price").get(timeout=30)
    assert OLD_PRICE in " ".join(hit["text"] for hit in hits)
