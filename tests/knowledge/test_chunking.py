"""Chunking: simple paragraph/heading packing, anchor slicing, and semantic boundaries from the LLM."""

import logging
import re

import pytest

from bots.models import LLMCall
from knowledge import chunking
from knowledge.chunking import (
    DEFAULT_MAX_CHARS,
    TextChunk,
    chunk_semantic,
    chunk_simple,
    parse_boundaries,
    slice_at_anchors,
)
from tests.fakes.llm_api import error, text, tool_call

PAGE = """# Window cleaning

We clean windows in Berlin and Potsdam. Our team arrives with all the equipment needed.

## Prices

A standard window costs 12 euros. Large panoramic windows cost 25 euros each.
| Service | Price |
|---|---|
| Window | 12 |

## Booking

Book by phone or in the Telegram bot. We confirm every booking within one hour."""


def squeezed(value: str) -> str:
    return re.sub(r"\s+", "", value)


def joined(chunks: list[TextChunk]) -> str:
    return squeezed("".join(chunk.text for chunk in chunks))


# --- simple ----------------------------------------------------------------------------------------------


def test_simple_chunks_follow_headings_and_keep_every_word():
    chunks = chunk_simple(PAGE, title="Alpha Cleaning")

    assert [chunk.topic for chunk in chunks] == ["Window cleaning", "Prices", "Booking"]
    assert chunks[1].text.startswith("## Prices\n\nA standard window costs 12 euros.")
    assert chunks[1].text.endswith("| Window | 12 |")
    assert joined(chunks) == squeezed(PAGE)


def test_simple_chunks_respect_max_chars_and_keep_their_heading_topic():
    sentences = " ".join(f"Sentence number {n} explains one more detail of the service." for n in range(40))
    page = f"Intro without a heading.\n\n### Details\n\n{sentences}\n\nShort closing paragraph."

    chunks = chunk_simple(page, title="Guide", max_chars=300)

    assert all(len(chunk.text) <= 300 for chunk in chunks)
    assert chunks[0] == TextChunk(topic="Guide", text="Intro without a heading.")
    assert chunks[1].text.startswith("### Details\n\nSentence number 0 explains")  # the heading is not left alone
    assert {chunk.topic for chunk in chunks[1:]} == {"Details"}
    assert all(chunk.text.endswith(".") for chunk in chunks)  # cut between sentences
    assert joined(chunks) == squeezed(page)


def test_short_paragraphs_are_merged_up_to_max_chars():
    page = "\n\n".join(f"Paragraph {n} is short." for n in range(10))

    chunks = chunk_simple(page, max_chars=80)

    assert [chunk.topic for chunk in chunks] == ["Part 1", "Part 2", "Part 3", "Part 4"]
    assert chunks[0].text == "Paragraph 0 is short.\n\nParagraph 1 is short.\n\nParagraph 2 is short."
    assert joined(chunks) == squeezed(page)


def test_table_rows_and_endless_words_are_split_hard_only_when_nothing_else_works():
    table = "\n".join(f"| Item {n} | {n * 10} EUR |" for n in range(30))
    word = "x" * 250

    table_chunks = chunk_simple(table, max_chars=100)
    word_chunks = chunk_simple(word, max_chars=100)

    assert all(len(chunk.text) <= 100 for chunk in table_chunks)
    assert all(line.startswith("| Item") for chunk in table_chunks for line in chunk.text.split("\n"))
    assert [len(chunk.text) for chunk in word_chunks] == [100, 100, 50]


def test_empty_text_gives_no_chunks():
    assert chunk_simple("  \n\n ") == []
    assert DEFAULT_MAX_CHARS == 1500


# --- boundaries and anchors ------------------------------------------------------------------------------


def test_parse_boundaries_reads_topic_starts_lines():
    answer = """Here are the sections:
TOPIC: Window cleaning | STARTS: We clean windows in Berlin
- TOPIC: **Prices** | STARTS: "A standard window costs 12 euros"
3. topic: Booking | starts: «Book by phone or in the»
TOPIC: Nothing | STARTS:
not a boundary"""

    assert parse_boundaries(answer) == [
        ("Window cleaning", "We clean windows in Berlin"),
        ("Prices", "A standard window costs 12 euros"),
        ("Booking", "Book by phone or in the"),
    ]


def test_slicing_at_anchors_keeps_the_original_text():
    boundaries = [
        ("Service", "we clean  WINDOWS in berlin"),  # case and whitespace differ
        ("Prices", "Prices"),  # the heading without its marks
        ("Invented", "This sentence is not in the page"),
        ("Booking", "Book by phone, or in the Telegram bot"),  # punctuation differs; its heading comes along
    ]

    chunks = slice_at_anchors(PAGE, boundaries)

    assert [chunk.topic for chunk in chunks] == ["Service", "Prices", "Booking"]
    assert chunks[0].text.startswith("# Window cleaning\n\nWe clean")  # text before the first anchor
    assert chunks[1].text.startswith("## Prices\n\nA standard window")
    assert (
        chunks[2].text
        == "## Booking\n\nBook by phone or in the Telegram bot. We confirm every booking within one hour."
    )
    assert all(chunk.text in PAGE for chunk in chunks)  # verbatim slices, not the model's words
    assert joined(chunks) == squeezed(PAGE)


def test_anchors_are_found_in_order_and_tolerate_a_paraphrased_tail():
    page = "Ёлки продаём с 1 декабря. Доставка ёлок по городу бесплатная. Оплата картой или наличными."
    boundaries = [
        ("Доставка", "доставка елок по городу бесплатная, а также"),  # the first five words are verbatim
        ("Продажа", "Ёлки продаём"),  # out of order: skipped
        ("Оплата", "Оплата картой"),
    ]

    chunks = slice_at_anchors(page, boundaries)

    assert chunks == [
        TextChunk("Доставка", "Ёлки продаём с 1 декабря. Доставка ёлок по городу бесплатная."),
        TextChunk("Оплата", "Оплата картой или наличными."),
    ]


def test_no_anchor_found_gives_nothing():
    assert slice_at_anchors(PAGE, [("A", "not in the page"), ("B", "")]) == []


# --- semantic --------------------------------------------------------------------------------------------

SECTIONS = [
    {"topic": "Window cleaning service", "starts": "# Window cleaning We clean windows"},
    {"topic": "Window prices", "starts": "## Prices A standard window costs"},
    {"topic": "How to book", "starts": "## Booking Book by phone"},
]


@pytest.fixture
def extract_model(settings):
    settings.LLM_MODEL_EXTRACT = "openai/gpt-test"


@pytest.mark.django_db
def test_semantic_chunks_slice_the_page_at_the_model_boundaries(fake_llm, extract_model, project_a):
    fake_llm.openai.push(tool_call("Boundaries", {"sections": SECTIONS}))

    chunks = chunk_semantic(PAGE, title="Alpha Cleaning", project=project_a)

    assert [chunk.topic for chunk in chunks] == ["Window cleaning service", "Window prices", "How to book"]
    assert chunks[1].text.startswith("## Prices\n\nA standard window costs 12 euros.")
    assert joined(chunks) == squeezed(PAGE)
    [request] = fake_llm.requests_to("openai")
    assert request.body["model"] == "gpt-test"
    assert request.body["temperature"] == 0.1
    assert request.body["tool_choice"] == {"type": "function", "function": {"name": "Boundaries"}}
    assert "STARTS" in request.body["messages"][0]["content"]
    assert PAGE in request.body["messages"][1]["content"]
    call = LLMCall.objects.get()
    assert (call.project_id, call.purpose, call.method, call.status) == (
        project_a.pk,
        "chunk_boundaries",
        "structured",
        "ok",
    )


@pytest.mark.django_db
def test_semantic_chunks_longer_than_max_are_split_and_keep_their_topic(fake_llm, extract_model, project_a):
    long_page = "Intro line.\n\n" + "\n\n".join(
        f"## Step {n}\n\nDo step {n} carefully and check it." for n in range(20)
    )
    fake_llm.openai.push(
        tool_call(
            "Boundaries",
            {"sections": [{"topic": "Intro", "starts": "Intro line."}, {"topic": "Steps", "starts": "## Step 0"}]},
        )
    )

    chunks = chunk_semantic(long_page, title="Guide", project=project_a, max_chars=200)

    assert chunks[0] == TextChunk("Intro", "Intro line.")
    assert len(chunks) > 3
    assert {chunk.topic for chunk in chunks[1:]} == {"Steps"}  # inner headings do not rename the section
    assert all(len(chunk.text) <= 200 for chunk in chunks)
    assert joined(chunks) == squeezed(long_page)


@pytest.mark.django_db
def test_the_project_extraction_model_is_used(fake_llm, extract_model, project_a, project_b):
    project_b.model_extract = "anthropic/claude-test"
    project_b.save()
    fake_llm.anthropic.push(tool_call("Boundaries", {"sections": SECTIONS}))

    chunks = chunk_semantic(PAGE, title="Beta", project=project_b)

    assert len(chunks) == 3
    assert fake_llm.requests_to("openai") == []
    assert fake_llm.requests_to("anthropic")[0].body["model"] == "claude-test"
    assert list(LLMCall.objects.values_list("project_id", flat=True)) == [project_b.pk]


@pytest.mark.parametrize(
    "replies",
    [
        pytest.param([text("Sorry, I cannot help."), text("TOPIC: nope")], id="garbage"),
        pytest.param([error(400, message="bad request")], id="error"),
        pytest.param(
            [tool_call("Boundaries", {"sections": [{"topic": "X", "starts": "words that are nowhere here"}]})],
            id="anchors-not-found",
        ),
    ],
)
@pytest.mark.django_db
def test_semantic_chunking_falls_back_to_simple_chunking(fake_llm, extract_model, project_a, caplog, replies):
    fake_llm.openai.push(*replies)

    with caplog.at_level(logging.WARNING, logger="knowledge.chunking"):
        chunks = chunk_semantic(PAGE, title="Alpha Cleaning", project=project_a)

    assert chunks == chunk_simple(PAGE, title="Alpha Cleaning")
    [record] = [r for r in caplog.records if r.name == "knowledge.chunking"]
    assert record.levelno == logging.WARNING
    assert record.project_id == project_a.pk
    assert "simple chunking instead" in record.getMessage()


@pytest.mark.django_db
def test_semantic_chunking_of_nothing_asks_nothing(fake_llm, extract_model, project_a):
    assert chunk_semantic(" \n ", title="Empty", project=project_a) == []
    assert fake_llm.requests == []


@pytest.mark.django_db
def test_a_very_long_document_is_asked_about_window_by_window(fake_llm, extract_model, project_a, monkeypatch):
    monkeypatch.setattr(chunking, "MAX_WINDOW_CHARS", 260)
    fake_llm.openai.push(
        tool_call("Boundaries", {"sections": SECTIONS[:2]}),
        tool_call("Boundaries", {"sections": SECTIONS[2:]}),
    )

    chunks = chunk_semantic(PAGE, title="Alpha Cleaning", project=project_a)

    assert [chunk.topic for chunk in chunks] == ["Window cleaning service", "Window prices", "How to book"]
    first, second = (request.body["messages"][1]["content"] for request in fake_llm.requests_to("openai"))
    assert "## Prices" in first
    assert "## Booking" not in first
    assert "## Booking" in second
    assert joined(chunks) == squeezed(PAGE)
