"""Property-based tests (hypothesis): the pure pieces that untrusted text and numbers flow through."""

import string
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bots.gateway import IncomingUpdate, MalformedUpdate, normalize_update
from bots.generations import WEEK_SECONDS, generation_interval
from bots.text_split import split_message
from knowledge.bm25 import K1, analyze, bm25_document_vector, bm25_fit, bm25_query_vector, tokenize

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text as users and models write it: Latin, Cyrillic, digits, punctuation, emoji, every kind of whitespace.
_alphabet = st.sampled_from(
    list(string.ascii_letters + string.digits + ".,!?…;:«»\"'()-") + list("абвгдеёжзийклмнопрстуфхцчшщъыьэюяЁЙ")
    + [" ", "  ", "\n", "\n\n", "\t", "\u00a0", "\u2028", "🙂", "é", "\u0301", "м²", "ｗ"]
)  # fmt: skip
human_text = st.lists(_alphabet, max_size=400).map("".join)
any_text = st.text(max_size=400)


def _without_whitespace(text: str) -> str:
    return "".join(text.split())


# --- the Telegram text splitter ------------------------------------------------------------------------------


@FAST
@given(text=st.one_of(human_text, any_text), limit=st.integers(min_value=1, max_value=120))
@example(text="a" * 250, limit=100)
@example(text="Short. " * 60, limit=50)
def test_split_parts_fit_the_limit_and_lose_no_character(text: str, limit: int) -> None:
    parts = split_message(text, limit)
    assert all(0 < len(part) <= limit for part in parts)
    assert all(part == part.strip() and part.strip() for part in parts)
    # Only whitespace at the cuts may go: every other character survives, in order.
    assert _without_whitespace("".join(parts)) == _without_whitespace(text)


@FAST
@given(text=st.one_of(human_text, any_text))
def test_a_text_within_the_limit_is_sent_as_it_is(text: str) -> None:
    parts = split_message(text, 4096)
    assert parts == ([text.strip()] if text.strip() else [])


@FAST
@given(paragraphs=st.lists(st.text(alphabet="abc xyz.", min_size=1, max_size=60).map(str.strip).filter(bool),
                           min_size=2, max_size=12))  # fmt: skip
def test_paragraphs_that_fit_are_never_cut_inside(paragraphs: list[str]) -> None:
    text = "\n\n".join(paragraphs)
    parts = split_message(text, 60)
    # Each paragraph (at most 60 characters) lands whole in exactly one part.
    for paragraph in paragraphs:
        assert any(paragraph in part for part in parts)


def test_split_refuses_a_nonsensical_limit() -> None:
    with pytest.raises(ValueError, match="limit"):
        split_message("hello", 0)


# --- the BM25 tokenizer and vectors ----------------------------------------------------------------------------


@FAST
@given(text=st.one_of(human_text, any_text))
def test_tokens_are_lowercase_runs_of_letters_and_digits(text: str) -> None:
    tokens = tokenize(text)
    for token in tokens:
        assert token == token.lower()
        assert all(ch.isalnum() for ch in token), token
        assert "ё" not in token
    # Tokenizing the tokens again changes nothing: the analysis is stable.
    assert tokenize(" ".join(tokens)) == tokens


@FAST
@given(text=st.one_of(human_text, any_text), language=st.sampled_from(["en", "ru", "English", " RU "]))
def test_analysis_never_fails_and_drops_single_characters(text: str, language: str) -> None:
    terms = analyze(text, language)
    unstemmed = analyze(text, language, stem=False)
    assert len(terms) == len(unstemmed)
    assert all(len(term) > 1 for term in unstemmed)


@given(language=st.text(max_size=10).filter(lambda s: s.strip().lower() not in {"en", "ru", "english", "russian"}))
@settings(max_examples=50, deadline=None)
def test_an_unsupported_language_is_a_clear_error(language: str) -> None:
    with pytest.raises(ValueError, match="unsupported BM25 language"):
        analyze("hello", language)


@FAST
@given(documents=st.lists(human_text, min_size=1, max_size=8), query=human_text)
def test_bm25_weights_are_positive_and_bounded(documents: list[str], query: str) -> None:
    corpus = [analyze(doc, "en") for doc in documents]
    stats = bm25_fit(corpus, language="en")
    assert sorted(stats.vocabulary.values()) == list(range(len(stats.vocabulary)))
    for terms in corpus:
        vector = bm25_document_vector(terms, stats)
        assert vector.indices == sorted(set(vector.indices))
        assert all(0 < value < K1 + 1 for value in vector.values)
    query_vector = bm25_query_vector(analyze(query, "en"), stats)
    assert set(query_vector.values) <= {1.0}
    # A refit keeps every earlier term id: stored vectors never change meaning.
    refit = bm25_fit([analyze(query, "en")], language="en", previous=stats)
    assert all(refit.vocabulary[term] == term_id for term, term_id in stats.vocabulary.items())


# --- update normalisation ---------------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=False), any_text
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(any_text, children, max_size=4)),
    max_leaves=20,
)
# Shapes close to real updates, with any value in any field: the interesting inputs for the gateway.
update_keys = st.sampled_from(["message", "callback_query", "edited_message", "channel_post", "poll", "my_chat_member"])
message_like = st.fixed_dictionaries(
    {},
    optional={
        "message_id": json_values, "date": json_values, "text": json_values, "caption": json_values,
        "chat": st.one_of(json_values, st.fixed_dictionaries({"id": json_values, "type": json_values})),
        "from": st.one_of(json_values, st.fixed_dictionaries({"id": json_values, "is_bot": json_values,
                                                               "first_name": json_values})),
        "photo": json_values, "document": json_values, "contact": json_values, "entities": json_values,
    },
)  # fmt: skip
update_like = st.fixed_dictionaries(
    {"update_id": st.one_of(st.integers(min_value=-(2**70), max_value=2**70), json_values)},
    optional={"message": message_like, "callback_query": json_values},
)
updates = st.one_of(json_values, update_like, st.dictionaries(update_keys, json_values, max_size=2))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=updates)
def test_normalisation_reads_an_update_or_raises_malformed_update(payload: object) -> None:
    try:
        incoming = normalize_update(payload)
    except MalformedUpdate as exc:
        message = str(exc)
        assert message, "a MalformedUpdate must say what is wrong"
        return
    assert isinstance(incoming, IncomingUpdate)
    assert isinstance(incoming.update_id, int)
    assert incoming.kind in ("message", "callback_query", "ignored")
    assert isinstance(incoming.text, str)
    if incoming.kind == "message":
        assert isinstance(incoming.chat_id, int)


@FAST
@given(
    text=st.one_of(human_text, any_text, st.just("a\x00b"), st.just("\ud800")),
    chat_id=st.integers(min_value=1, max_value=2**40),
)
def test_a_valid_text_message_keeps_its_text_and_chat(text: str, chat_id: int) -> None:
    payload = {"update_id": 7, "message": {"message_id": 1, "date": 0, "text": text,
                                           "chat": {"id": chat_id, "type": "private"},
                                           "from": {"id": chat_id, "is_bot": False, "first_name": "A"}}}  # fmt: skip
    if "\x00" in text or any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        with pytest.raises(MalformedUpdate, match=r"NUL|surrogate"):  # PostgreSQL could not store it
            normalize_update(payload)
        return
    incoming = normalize_update(payload)
    assert (incoming.kind, incoming.chat_id) == ("message", chat_id)
    assert incoming.text == text


# --- the budget formula --------------------------------------------------------------------------------------------

# The model's domain: costs are Decimal(12, 6), budgets Decimal(10, 2) of at least 0.01.
money = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("999999.999999"), places=6)
budgets = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999999.99"), places=2)


@FAST
@given(cost=money, budget=budgets)
def test_interval_is_cost_over_budget_times_a_week(cost: Decimal, budget: Decimal) -> None:
    interval = generation_interval(last_cost_usd=cost, weekly_budget_usd=budget)
    expected = float(cost * WEEK_SECONDS / budget)
    assert interval.total_seconds() == pytest.approx(expected, rel=1e-6, abs=1e-3)
    # Spending the interval's cost at that pace costs the weekly budget over a week (timedelta keeps
    # microseconds, so only intervals of a second or more are exact to 1e-5).
    if interval.total_seconds() >= 1:
        per_week = float(cost) * WEEK_SECONDS / interval.total_seconds()
        assert per_week == pytest.approx(float(budget), rel=1e-5)


@FAST
@given(cost=money, budget=st.one_of(st.none(), st.just(Decimal(0)), budgets.map(lambda m: -m)))
def test_no_budget_means_no_spacing(cost: Decimal, budget: Decimal | None) -> None:
    assert generation_interval(last_cost_usd=cost, weekly_budget_usd=budget) == timedelta(0)


@FAST
@given(cheap=money, dear=money, budget=budgets)
def test_a_dearer_generation_never_waits_less(cheap: Decimal, dear: Decimal, budget: Decimal) -> None:
    cheap, dear = sorted((cheap, dear))
    assert generation_interval(last_cost_usd=cheap, weekly_budget_usd=budget) <= generation_interval(
        last_cost_usd=dear, weekly_budget_usd=budget
    )
