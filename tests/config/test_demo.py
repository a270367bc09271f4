from io import StringIO

import pytest
from django.core.management import call_command

from console.demo import demo_site_files
from knowledge.models import CrawlJob, Source
from tenants.models import Project

pytestmark = pytest.mark.django_db


def test_demo_creates_both_kinds_and_queues_the_bundled_knowledge_base_once():
    call_command("demo", stdout=StringIO())
    call_command("demo", stdout=StringIO())

    assert set(Project.objects.values_list("slug", "kind")) == {("demo-sales", "sales"), ("demo-matching", "matching")}
    [job] = CrawlJob.objects.all()
    assert job.project.slug == "demo-sales"
    titles = set(Source.objects.values_list("title", flat=True))
    assert titles == {name for name, _ in demo_site_files()}
    assert any(name.startswith("en/") for name in titles)
    assert any(name.startswith("ru/") for name in titles)
