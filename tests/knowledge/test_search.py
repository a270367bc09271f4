"""knowledge_search end to end: real `:memory:` Qdrant, real offline embeddings, real BM25 statistics."""

from collections.abc import Iterator

import pytest

from bots.llm.embeddings import embed_texts
from bots.models import LLMCall
from knowledge import search as search_module
from knowledge.bm25 import analyze, bm25_document_vector, bm25_fit, bm25_stats_load, bm25_stats_save
from knowledge.models import BM25Index
from knowledge.qdrant_store import qdrant_close
from knowledge.search import MAX_RESULTS, bm25_stats_cache_clear, format_hits_for_model, knowledge_search
from knowledge.vector_store import ChunkPoint, SearchHit, collection_ensure, points_all, points_count, points_upsert
from tests.knowledge.test_vector_store import CLEANING_SITE, SITE, IndexedSite, index_site

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_store() -> Iterator[None]:
    qdrant_close()
    bm25_stats_cache_clear()
    yield
    qdrant_close()
    bm25_stats_cache_clear()


@pytest.fixture
def alpha_site(project_a) -> IndexedSite:
    return index_site(project_a)


def keys(site: IndexedSite, hits: list[SearchHit]) -> list[str]:
    return [site.key_of(hit.chunk_id) for hit in hits]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What does a deep cleaning of a flat cost?", "prices"),
        ("Do you clean rugs?", "carpets"),
        ("How can I reach you by phone?", "contacts"),
        ("Сколько стоит уборка квартиры?", "ru_prices"),
        ("Моете ли вы окна?", "ru_windows"),
        ("Вы работаете в выходные?", "ru_hours"),
        ("Убираете ли вы строительную пыль после ремонта?", "renovation"),  # English-only subject
    ],
)
def test_search_puts_the_right_chunk_first(alpha_site, project_a, question, expected):
    hits = knowledge_search(project=project_a, query=question)

    assert hits, question
    assert keys(alpha_site, hits)[0] == expected
    assert all(hit.score >= search_module.MIN_FUSED_SCORE for hit in hits)


@pytest.mark.parametrize(("asked", "at_most"), [(10, MAX_RESULTS), (3, 3), (2, 2), (0, 1), (-5, 1)])
def test_top_k_is_clamped_to_one_to_three(alpha_site, project_a, asked, at_most):
    hits = knowledge_search(project=project_a, query="cleaning prices windows carpets", top_k=asked)

    assert 1 <= len(hits) <= at_most


def test_nonsense_query_returns_nothing_under_the_minimum_score(alpha_site, project_a):
    hits = knowledge_search(project=project_a, query="quantum chromodynamics of neutron stars")

    assert len(hits) <= MAX_RESULTS
    assert all(hit.score >= search_module.MIN_FUSED_SCORE for hit in hits)


def test_url_filter_restricts_results_to_one_url(alpha_site, project_a):
    hits = knowledge_search(project=project_a, query="How much does it cost?", url_filter=f"{SITE}/prices")

    assert keys(alpha_site, hits) == ["prices"]
    assert knowledge_search(project=project_a, query="How much?", url_filter=f"{SITE}/missing") == []


def test_a_project_only_ever_finds_its_own_chunks(alpha_site, project_a, project_b):
    beta_site = index_site(project_b)  # the same texts, indexed for the other tenant

    for project, site, other in ((project_a, alpha_site, beta_site), (project_b, beta_site, alpha_site)):
        hits = knowledge_search(project=project, query="Do you wash windows?")
        own_ids = {chunk.pk for chunk in site.chunks.values()}
        points = points_all(collection=site.collection)

        assert hits
        assert {hit.chunk_id for hit in hits} <= own_ids
        assert not {hit.chunk_id for hit in hits} & {chunk.pk for chunk in other.chunks.values()}
        assert {point.payload["project_id"] for point in points if point.payload["chunk_id"] in own_ids} == {project.pk}


def test_project_without_a_collection_finds_nothing_and_embeds_nothing(project_a, monkeypatch):
    def no_embedding(*args, **kwargs):
        raise AssertionError("a project without a knowledge base must not pay for an embedding")

    monkeypatch.setattr(search_module, "embed_texts", no_embedding)

    assert knowledge_search(project=project_a, query="Do you wash windows?") == []
    assert knowledge_search(project=project_a, query="   ") == []


def test_project_without_bm25_statistics_searches_dense_only(alpha_site, project_a):
    BM25Index.objects.filter(project=project_a).delete()

    hits = knowledge_search(project=project_a, query="Do you wash windows?")

    assert keys(alpha_site, hits)[0] == "windows"


def test_bm25_statistics_are_cached_until_a_crawl_saves_new_ones(alpha_site, project_a, monkeypatch):
    loads, sparse_sent = [], []
    real_load, real_query = search_module.bm25_stats_load, search_module.hybrid_query

    def counting_load(**kwargs):
        loads.append(kwargs["project"].pk)
        return real_load(**kwargs)

    def recording_query(**kwargs):
        sparse_sent.append(kwargs["sparse"])
        return real_query(**kwargs)

    monkeypatch.setattr(search_module, "bm25_stats_load", counting_load)
    monkeypatch.setattr(search_module, "hybrid_query", recording_query)

    knowledge_search(project=project_a, query="gutters")
    knowledge_search(project=project_a, query="gutters")
    assert loads == [project_a.pk]
    assert sparse_sent[-1].indices == []  # an unknown word: dense only

    # A crawl adds a page about gutters and saves refreshed statistics.
    previous = bm25_stats_load(project=project_a)
    documents = [analyze(f"{spec.topic} {spec.text}", "en") for spec in CLEANING_SITE]
    documents.append(analyze("Gutter cleaning: we clear gutters and downpipes.", "en"))
    bm25_stats_save(project=project_a, stats=bm25_fit(documents, language="en", previous=previous))

    knowledge_search(project=project_a, query="gutters")
    assert loads == [project_a.pk, project_a.pk]
    assert sparse_sent[-1].indices  # the new term is known now


def test_each_embedding_model_has_its_own_collection(alpha_site, project_a, fake_llm, settings):
    settings.EMBEDDING_MODEL = "openai/text-embedding-3-small"
    settings.EMBEDDING_DIM = 16

    # The offline model's collection exists, this model's does not: nothing found, nothing embedded.
    assert knowledge_search(project=project_a, query="Do you wash windows?") == []
    assert fake_llm.requests_to("embeddings") == []

    # Re-embedding the knowledge base with the new model fills a collection of its own.
    chunk = alpha_site.chunks["windows"]
    stats = bm25_stats_load(project=project_a)
    embedded = embed_texts([chunk.text], kind="document")
    collection = collection_ensure(project_id=project_a.pk, model_id=embedded.model, dim=embedded.dim)
    points_upsert(
        collection=collection,
        points=[
            ChunkPoint(
                point_id=str(chunk.point_id),
                dense=embedded.vectors[0],
                sparse=bm25_document_vector(analyze(chunk.text, "en"), stats),
                payload={"project_id": project_a.pk, "chunk_id": chunk.pk, "url": chunk.page.url, "text": chunk.text},
            )
        ],
    )

    hits = knowledge_search(project=project_a, query="Do you wash windows?")

    assert collection != alpha_site.collection
    assert [hit.chunk_id for hit in hits] == [chunk.pk]
    assert points_count(collection=alpha_site.collection) == len(CLEANING_SITE)
    assert fake_llm.requests_to("embeddings")[-1].body["input"] == ["Do you wash windows?"]
    call = LLMCall.objects.filter(method="embed").latest("pk")
    assert (call.purpose, call.project_id) == ("search_query", project_a.pk)


def test_format_hits_for_model_numbers_each_result_with_score_topic_url_and_text():
    hits = [
        SearchHit(
            score=1.2345, url=f"{SITE}/prices", topic="Prices", text="Cleaning costs 25 euros per hour.\n", chunk_id=1
        ),
        SearchHit(score=0.5, url=f"{SITE}/faq", topic="", text="We bring our own supplies.", chunk_id=2),
    ]

    assert format_hits_for_model(hits) == (
        f"[1] score 1.23 | topic: Prices | url: {SITE}/prices\n"
        "Cleaning costs 25 euros per hour.\n"
        "\n"
        f"[2] score 0.50 | topic: (no topic) | url: {SITE}/faq\n"
        "We bring our own supplies."
    )


def test_format_hits_for_model_says_clearly_when_nothing_was_found():
    assert format_hits_for_model([]) == "No results in the knowledge base for this query."
