"""Long replies cut into Telegram-sized messages at the most natural boundary available.

Telegram refuses a message over 4096 characters. A reply is cut recursively: into paragraphs first,
and only a paragraph that alone is too long is cut into lines, a too-long line into sentences, a
too-long sentence at spaces, and a single too-long word hard at the limit. Neighbouring pieces are
packed greedily into one message as long as they fit, so a message never mixes a piece of a long
paragraph with the next paragraph. Only the whitespace at a cut is dropped; no other character is lost.
"""

import re

TELEGRAM_TEXT_LIMIT = 4096

# Each pattern matches the whitespace a cut removes; the levels go from coarsest to finest.
_PARAGRAPH = re.compile(r"\n[^\S\n]*\n\s*")  # one or more blank lines
_LINE = re.compile(r"\s*\n\s*")
# Sentence ends are the same characters in English and Russian; closing quotes and brackets stay with
# the sentence they close ("Он сказал: «Да.» Потом ...").
_SENTENCE = re.compile(r"(?<=[.!?…])[\"'»”’)\]]*(\s+)")
_SPACE = re.compile(r"\s+")
_LEVELS = (_PARAGRAPH, _LINE, _SENTENCE, _SPACE)


def split_message(text: str, limit: int = TELEGRAM_TEXT_LIMIT) -> list[str]:
    """The parts to send, in order: each non-blank, stripped and at most `limit` characters long."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    parts = _split(text.strip(), limit, level=0)
    return [part for part in (p.strip() for p in parts) if part]


def _split(text: str, limit: int, level: int) -> list[str]:
    if len(text) <= limit:
        return [text]
    if level == len(_LEVELS):
        return _hard_cut(text, limit)
    parts: list[str] = []
    current = ""
    for separator, piece in _pieces(text, _LEVELS[level]):
        joined = f"{current}{separator}{piece}" if current else piece
        if len(joined) <= limit:
            current = joined
            continue
        if current:
            parts.append(current)
        if len(piece) <= limit:
            current = piece
        else:  # only this piece is too long: cut it finer, and start afresh after it
            parts.extend(_split(piece, limit, level + 1))
            current = ""
    if current:
        parts.append(current)
    return parts


def _pieces(text: str, pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    """`text` cut at every match of `pattern`, as (separator before the piece, piece) pairs."""
    pieces: list[tuple[str, str]] = []
    separator, start = "", 0
    for match in pattern.finditer(text):
        # The cut is the pattern's group when it has one (the space after a sentence end), else the match.
        cut_start, cut_end = match.span(1) if pattern.groups else match.span()
        pieces.append((separator, text[start:cut_start]))
        separator, start = text[cut_start:cut_end], cut_end
    pieces.append((separator, text[start:]))
    return pieces


def _hard_cut(text: str, limit: int) -> list[str]:
    """The last resort for a run without any whitespace (a long URL, a base64 blob)."""
    return [text[start : start + limit] for start in range(0, len(text), limit)]
