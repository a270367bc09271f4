"""Long replies are cut at the most natural boundary, never lose content and never exceed the limit."""

import re

import pytest

from bots.text_split import split_message


def non_whitespace(text: str) -> str:
    return re.sub(r"\s+", "", text)


def assert_valid_split(text: str, parts: list[str], limit: int) -> None:
    assert all(part and part == part.strip() for part in parts)
    assert all(len(part) <= limit for part in parts)
    assert non_whitespace("".join(parts)) == non_whitespace(text)


def test_short_text_is_one_unchanged_part():
    assert split_message("Hello! How can I help?") == ["Hello! How can I help?"]
    assert split_message("x" * 4096) == ["x" * 4096]


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t \n"])
def test_empty_or_blank_text_gives_no_parts(text):
    assert split_message(text) == []


def test_long_text_of_paragraphs_splits_at_paragraph_boundaries():
    paragraphs = [f"Paragraph {n}. " + "Some words about cleaning windows. " * 8 for n in range(36)]
    paragraphs = [p.strip() for p in paragraphs]
    text = "\n\n".join(paragraphs)
    assert len(text) > 10000

    parts = split_message(text)

    assert len(parts) == 3
    assert_valid_split(text, parts, 4096)
    # Every part is a run of whole paragraphs, in order.
    assert [p for part in parts for p in part.split("\n\n")] == paragraphs


def test_one_long_word_is_hard_cut_at_the_limit():
    word = "x" * 9000
    parts = split_message(word)
    assert [len(part) for part in parts] == [4096, 4096, 808]
    assert "".join(parts) == word


def test_russian_sentences_split_at_sentence_ends():
    sentences = [
        "Мы моем окна в Москве и области.",
        "Стоимость зависит от площади остекления!",
        "Хотите, рассчитаем цену прямо сейчас?",
        "Он сказал: «Приезжайте завтра.»",
        "Ждём вашего ответа…",
        "Спасибо, что обратились к нам.",
    ]
    text = " ".join(sentences * 3)

    parts = split_message(text, limit=90)

    assert_valid_split(text, parts, 90)
    assert all(part.endswith((".", "!", "?", "…", "»")) for part in parts)
    assert {s for part in parts for s in re.split(r"(?<=[.!?…»]) ", part)} == set(sentences)


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        # Paragraphs are packed greedily while they fit.
        ("aaa\n\nbbb\n\nccc", 8, ["aaa\n\nbbb", "ccc"]),
        # Only the too-long paragraph is cut finer; the short one before it stays alone.
        ("intro\n\nline one\nline two", 12, ["intro", "line one", "line two"]),
        # Lines before sentences: a line break wins over a sentence end.
        ("One. Two.\nThree. Four.", 12, ["One. Two.", "Three. Four."]),
        # Sentences before spaces, with English punctuation too.
        ("Is it? Yes it is! Fine.", 10, ["Is it?", "Yes it is!", "Fine."]),
        # Spaces before hard cuts.
        ("alpha beta gamma", 11, ["alpha beta", "gamma"]),
        # A word longer than the limit is cut, its neighbours are not.
        ("hi abcdefghij yo", 4, ["hi", "abcd", "efgh", "ij", "yo"]),
        # Blank lines made of spaces and runs of blank lines are one paragraph break.
        ("first\n   \n\n\nsecond", 6, ["first", "second"]),
        # A decimal point is not a sentence end.
        ("Costs 3.50 now. Then more.", 16, ["Costs 3.50 now.", "Then more."]),
    ],
)
def test_boundary_priorities(text, limit, expected):
    parts = split_message(text, limit=limit)
    assert parts == expected
    assert_valid_split(text, parts, limit)


@pytest.mark.parametrize("limit", [1, 2, 7, 50, 333])
def test_limits_are_respected_on_mixed_text(limit):
    text = (
        "Hello there.\n\nWe clean offices, homes and windows! Prices start at 30 EUR per hour.\n"
        "Call us: +49 30 1234567.\n\n\nhttps://example.com/" + "a" * 700 + " done… Правда? Да.  Конец."
    )
    assert_valid_split(text, split_message(text, limit=limit), limit)


def test_limit_must_be_positive():
    with pytest.raises(ValueError, match="limit"):
        split_message("text", limit=0)
