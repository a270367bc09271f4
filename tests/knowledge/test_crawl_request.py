"""One validation of crawl input for every entry point, and the schedule sweep that starts re-crawls."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.utils import timezone

from console.forms import ProjectCrawlForm
from knowledge.forms import CrawlForm
from knowledge.models import CrawlJob, Source
from knowledge.services import (
    CrawlInputError,
    crawl_input_clean,
    crawl_request,
    crawl_schedules_run,
    source_schedule_set,
)
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

URLS = {
    "https://shop.example/prices": True,
    "shop.example/prices": True,  # a bare address means https
    "http://127.0.0.1:8000/a.html": True,
    "not-a-url": False,
    "ftp://files.example/a.pdf": False,
    "javascript:alert(1)": False,
    "file:///etc/passwd": False,
}
FILES = {"offer.pdf": True, "prices.xlsx": True, "rates.csv": True, "notes.md": True, "page.htm": True,
         "tool.exe": False, "photo.png": False, "archive.zip": False, "no-suffix": False}  # fmt: skip


def accepted_by_service(urls=(), files=()) -> bool:
    try:
        crawl_input_clean(urls=urls, files=files)
    except CrawlInputError:
        return False
    return True


@pytest.mark.parametrize(("url", "valid"), URLS.items())
def test_every_entry_point_judges_a_url_alike(url, valid, project_a):
    user = UserFactory(is_superuser=True)
    admin_form = CrawlForm({"project": project_a.pk, "urls": url, "schedule": "off"}, user=user)
    console_form = ProjectCrawlForm({"urls": url})
    sitemap_form = CrawlForm({"project": project_a.pk, "sitemap": url, "schedule": "off"}, user=user)
    assert accepted_by_service(urls=[url]) is valid
    assert admin_form.is_valid() is valid, admin_form.errors
    assert console_form.is_valid() is valid, console_form.errors
    assert sitemap_form.is_valid() is valid, sitemap_form.errors


@pytest.mark.parametrize(("name", "valid"), FILES.items())
def test_every_entry_point_judges_a_file_alike(name, valid, project_a):
    user = UserFactory(is_superuser=True)
    upload = SimpleUploadedFile(name, b"Window washing costs 7 dollars per window.")
    form = CrawlForm({"project": project_a.pk, "schedule": "off"}, {"files": [upload]}, user=user)
    assert accepted_by_service(files=[(name, b"x")]) is valid
    assert form.is_valid() is valid, form.errors


def test_a_request_lists_every_problem_and_creates_nothing(project_a):
    with pytest.raises(CrawlInputError) as raised:
        crawl_request(project=project_a, urls=["not-a-url", "https://ok.example/"], files=[("a.exe", b"MZ")])
    assert raised.value.problems == ["not-a-url: not a web address", "a.exe: unsupported file type .exe; "
                                     "supported: HTML, HTM, XHTML, PDF, DOCX, XLSX, TXT, MD, CSV"]  # fmt: skip
    assert not CrawlJob.objects.exists()
    assert not Source.objects.exists()


def test_asking_for_a_source_again_reuses_it(project_a, project_b, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():
        first = crawl_request(project=project_a, urls=["https://shop.example/prices"], schedule="daily")
        CrawlJob.objects.filter(pk=first.pk).update(status=CrawlJob.Status.DONE)
        again = crawl_request(project=project_a, urls=["shop.example/prices"])
        other = crawl_request(project=project_b, urls=["https://shop.example/prices"])
    assert list(first.sources.all()) == list(again.sources.all())
    assert Source.objects.filter(project=project_a).count() == 1
    assert Source.objects.get(project=project_a).schedule == "daily"  # not reset by a request without one
    assert other.sources.get().project == project_b


def scheduled_source(project, url: str, schedule: str, queued_ago: timedelta | None) -> Source:
    queued = timezone.now() - queued_ago if queued_ago is not None else None
    return Source.objects.create(project=project, kind="url", url=url, schedule=schedule, last_queued_at=queued)


def test_the_sweep_starts_one_crawl_per_project_of_its_due_sources(project_a, project_b, monkeypatch):
    enqueued = []
    monkeypatch.setattr("knowledge.services._enqueue", enqueued.append)
    due_hourly = scheduled_source(project_a, "https://a.example/1", "hourly", timedelta(minutes=61))
    due_never = scheduled_source(project_a, "https://a.example/2", "weekly", None)
    scheduled_source(project_a, "https://a.example/3", "daily", timedelta(hours=5))  # not yet
    scheduled_source(project_a, "https://a.example/4", "off", timedelta(days=30))  # off
    due_b = scheduled_source(project_b, "https://b.example/1", "daily", timedelta(hours=25))

    jobs = crawl_schedules_run()

    assert {frozenset(job.sources.all()) for job in jobs} == {frozenset({due_hourly, due_never}), frozenset({due_b})}
    assert all(job.scheduled for job in jobs)
    assert enqueued == jobs
    # Queued now: a second sweep (beat running twice, or a minute later) starts nothing.
    assert crawl_schedules_run() == []
    # Even with time moved on, a source whose job is still queued or running is left alone.
    assert crawl_schedules_run(now=timezone.now() + timedelta(hours=2)) == []
    CrawlJob.objects.update(status=CrawlJob.Status.DONE)
    later = crawl_schedules_run(now=timezone.now() + timedelta(hours=2))
    assert [set(job.sources.all()) for job in later] == [{due_hourly}]


def test_the_sweep_skips_deleted_and_matching_projects(project_a, project_b, monkeypatch):
    monkeypatch.setattr("knowledge.services._enqueue", lambda job: None)
    scheduled_source(project_a, "https://a.example/1", "hourly", None)
    scheduled_source(project_b, "https://b.example/1", "hourly", None)
    project_a.deleted_at = timezone.now()
    project_a.save()
    project_b.kind = "matching"
    project_b.save()
    assert crawl_schedules_run() == []


def test_schedules_are_set_per_project(project_a, project_b):
    scheduled_source(project_a, "https://a.example/1", "off", None)
    scheduled_source(project_b, "https://b.example/1", "off", None)
    assert source_schedule_set(project=project_a, schedule="weekly") == 1
    assert list(Source.objects.values_list("project__slug", "schedule").order_by("project__slug")) == [
        ("alpha", "weekly"), ("beta", "off")
    ]  # fmt: skip
    with pytest.raises(CrawlInputError, match="one of off, hourly, daily, weekly"):
        source_schedule_set(project=project_a, schedule="monthly")


def test_beat_runs_the_sweep(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["crawl-schedules"]
    assert entry["task"] == "knowledge.tasks.crawl_schedules_sweep"
    assert entry["schedule"] <= 300


def test_project_set_crawl_schedule_sets_every_source_of_that_project(project_a, project_b):
    scheduled_source(project_a, "https://a.example/1", "off", None)
    scheduled_source(project_a, "https://a.example/2", "hourly", None)
    scheduled_source(project_b, "https://b.example/1", "off", None)
    out = StringIO()
    call_command("project", "set", "alpha", "crawl_schedule", "daily", stdout=out)
    assert "alpha: 2 source(s) re-crawled daily" in out.getvalue()
    assert set(Source.objects.filter(project=project_a).values_list("schedule", flat=True)) == {"daily"}
    assert Source.objects.get(project=project_b).schedule == "off"
    with pytest.raises(CommandError, match="one of off, hourly, daily, weekly"):
        call_command("project", "set", "alpha", "crawl_schedule", "sometimes", stdout=StringIO())


def test_a_source_already_being_crawled_is_refused(project_a, project_b, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks():
        job = crawl_request(project=project_a, urls=["https://shop.example/prices"])
        crawl_request(project=project_b, urls=["https://shop.example/prices"])  # another tenant's own source
    with pytest.raises(CrawlInputError, match=f"already in crawl job #{job.pk}"):
        crawl_request(project=project_a, urls=["https://shop.example/prices"])
    with pytest.raises(CrawlInputError, match="already in crawl job"):
        crawl_request(project=project_a, all_sources=True)
    CrawlJob.objects.filter(pk=job.pk).update(status=CrawlJob.Status.PARTIAL)
    with django_capture_on_commit_callbacks():
        assert crawl_request(project=project_a, all_sources=True).pk != job.pk
