"""Knowledge collections take the configured embedding model's size: a crawl with an endpoint model of
256, 384, 512 or 1536 dimensions fills a collection of that size and search answers from it; changing only
EMBEDDING_DIM (the same Matryoshka model at another size) and re-crawling fills a collection of the new size."""

import pytest

from knowledge import pipeline
from knowledge.models import Chunk
from knowledge.pipeline import crawl_job_run
from knowledge.qdrant_store import qdrant_close
from knowledge.search import knowledge_search
from knowledge.services import crawl_job_create
from knowledge.vector_store import collection_dim, points_count

pytestmark = pytest.mark.django_db

MODEL = "openai/text-embedding-3-small"


@pytest.fixture(autouse=True)
def fresh_qdrant():
    qdrant_close()
    yield
    qdrant_close()


def crawl(project, site, **kwargs):
    if kwargs:
        return crawl_job_run(job=crawl_job_create(project=project, sources=project.knowledge_sources.all(), **kwargs))
    return crawl_job_run(job=crawl_job_create(project=project, sitemap=site.url("sitemap.xml")))


def dense_size(collection: str) -> int:
    return collection_dim(collection=collection)


@pytest.mark.parametrize("dim", [256, 384, 512, 1536])
def test_a_crawl_fills_a_collection_of_the_models_size(project_a, local_site, fake_llm, settings, dim):
    settings.EMBEDDING_MODEL, settings.EMBEDDING_DIM = MODEL, dim

    job = crawl(project_a, local_site)

    assert job.status == "done", job.error
    collection = pipeline._collection(project_a)
    assert collection.endswith(f"_{dim}")
    assert dense_size(collection) == dim
    chunks = Chunk.objects.filter(project=project_a)
    assert {len(chunk.embedding) for chunk in chunks} == {dim}
    assert points_count(collection=collection) == chunks.count()
    assert {r.body["dimensions"] for r in fake_llm.requests_to("embeddings")} == {dim}
    hits = knowledge_search(project=project_a, query="How much does window washing cost?")
    assert any("7 dollars per window" in hit.text for hit in hits)


def test_the_same_model_at_another_size_gets_its_own_collection_on_a_recrawl(project_a, local_site, fake_llm, settings):
    settings.EMBEDDING_MODEL, settings.EMBEDDING_DIM = MODEL, 256
    crawl(project_a, local_site)
    old = pipeline._collection(project_a)

    settings.EMBEDDING_DIM = 384
    job = crawl(project_a, local_site, recrawl=True)

    assert job.status == "done", job.error
    new = pipeline._collection(project_a)
    assert new != old
    assert (dense_size(old), dense_size(new)) == (256, 384)
    current = Chunk.objects.filter(project=project_a)
    assert {len(chunk.embedding) for chunk in current} == {384}
    assert points_count(collection=new) == current.count()
    hits = knowledge_search(project=project_a, query="How much does window washing cost?")
    assert any("7 dollars per window" in hit.text for hit in hits)
