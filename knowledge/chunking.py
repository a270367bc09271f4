"""Splitting a page's text into topic-labelled chunks for embedding and BM25.

Simple chunking splits on blank lines and markdown headings and merges paragraphs up to `max_chars`.
Semantic chunking asks the project's extraction model where the topics start (`TOPIC: X | STARTS: Y`,
as structured output) and slices the ORIGINAL text at those anchors, so chunks never carry the
model's paraphrase; when the model fails or its anchors are not in the text, simple chunking takes over.
"""

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass

from pydantic import BaseModel, Field

from bots.llm.slots import resolve_chain
from bots.llm.structured import structured_output
from bots.llm.types import CallContext, LLMError
from tenants.models import Project

logger = logging.getLogger(__name__)

DEFAULT_MAX_CHARS = 1500
MAX_TOPIC_CHARS = 300  # Chunk.topic
MAX_WINDOW_CHARS = 24_000  # text per boundary call: longer documents are asked about window by window
BOUNDARY_MAX_TOKENS = 4096
BOUNDARY_TEMPERATURE = 0.1


@dataclass(frozen=True)
class TextChunk:
    topic: str
    text: str


# --- simple chunking -------------------------------------------------------------------------------------

_HEADING = re.compile(r"^#{1,6}[ \t]+(?P<text>.+?)[ \t#]*$")
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
# Ever finer places to split a paragraph that is too long: lines (table rows), sentences, words.
_SPLITTERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\n"), "\n"),
    (_SENTENCE_END, " "),
    (re.compile(r"\s+"), " "),
)


def chunk_simple(text: str, *, title: str = "", max_chars: int = DEFAULT_MAX_CHARS) -> list[TextChunk]:
    """Paragraphs merged up to `max_chars`; every heading starts a chunk and names it.

    Topic: the nearest preceding heading, else the page title, else "Part N".
    """
    pieces = [(heading, piece) for heading, blocks in _sections(text) for piece in _pack(blocks, max_chars)]
    return [
        TextChunk(topic=_clean_topic(heading or title) or f"Part {number}", text=piece)
        for number, (heading, piece) in enumerate(pieces, start=1)
    ]


Block = tuple[str | None, str]  # (the heading's text, or None for a paragraph; the block as written)


def _blocks(text: str) -> Iterator[Block]:
    """Paragraphs (separated by blank lines) and heading lines, in order."""
    lines: list[str] = []
    for line in text.split("\n"):
        heading = _HEADING.match(line.strip())
        if heading or not line.strip():
            if lines:
                yield None, "\n".join(lines).strip()
                lines = []
            if heading:
                yield heading.group("text"), line.strip()
            continue
        lines.append(line)
    if lines:
        yield None, "\n".join(lines).strip()


def _sections(text: str) -> list[tuple[str | None, list[Block]]]:
    """Blocks grouped under their heading. Consecutive headings with nothing between stay together
    (the last one names the section), so a title over a subtitle does not become a chunk of its own."""
    sections: list[tuple[str | None, list[Block]]] = []
    topic: str | None = None
    blocks: list[Block] = []
    for heading, block in _blocks(text):
        if heading is not None and any(kind is None for kind, _ in blocks):
            sections.append((topic, blocks))
            blocks = []
        if heading is not None:
            topic = heading
        blocks.append((heading, block))
    if blocks:
        sections.append((topic, blocks))
    return sections


def _split_to_size(text: str, max_chars: int) -> list[str]:
    """The text itself when it fits, else paragraph packing that ignores headings as topic changes."""
    return [text] if len(text) <= max_chars else _pack(list(_blocks(text)), max_chars)


def _pack(blocks: list[Block], max_chars: int) -> list[str]:
    """Blocks merged up to `max_chars`, long ones split; heading lines stay with the paragraph they head."""
    pieces: list[str] = []
    headings = ""
    for heading, block in blocks:
        if heading is not None:
            headings = f"{headings}\n\n{block}" if headings else block
            continue
        pieces += _headed(headings, block, max_chars)
        headings = ""
    if headings:
        pieces.append(headings)
    return _merge(pieces, "\n\n", max_chars)


def _headed(headings: str, paragraph: str, max_chars: int) -> list[str]:
    if not headings:
        return _split_long(paragraph, max_chars)
    budget = max_chars - len(headings) - 2
    if budget < max_chars // 4:  # headings too long to share a chunk with a fair part of the paragraph
        return [*_split_long(headings, max_chars), *_split_long(paragraph, max_chars)]
    first, *rest = _split_long(paragraph, budget)
    return [f"{headings}\n\n{first}", *rest]


def _split_long(text: str, max_chars: int) -> list[str]:
    if len(text) <= max_chars:
        return [text]
    for pattern, joiner in _SPLITTERS:
        parts = [part.strip() for part in pattern.split(text) if part.strip()]
        if len(parts) > 1:
            return _merge([piece for part in parts for piece in _split_long(part, max_chars)], joiner, max_chars)
    return [text[start : start + max_chars] for start in range(0, len(text), max_chars)]  # one endless word


def _merge(pieces: list[str], joiner: str, max_chars: int) -> list[str]:
    merged: list[str] = []
    for piece in pieces:
        if merged and len(merged[-1]) + len(joiner) + len(piece) <= max_chars:
            merged[-1] = f"{merged[-1]}{joiner}{piece}"
        else:
            merged.append(piece)
    return merged


def _clean_topic(topic: str | None) -> str:
    return " ".join((topic or "").replace("*", " ").split())[:MAX_TOPIC_CHARS]


# --- anchors ---------------------------------------------------------------------------------------------

_BOUNDARY_LINE = re.compile(r"TOPIC:\s*(?P<topic>.*?)\s*\|\s*STARTS:\s*(?P<starts>.*)", re.IGNORECASE)
_QUOTES = "\"'`“”„«»‘’ "
_WORD = re.compile(r"[^\W_]+")
_LINE_PREFIX = re.compile(r"[ \t#>*+\-|\d.)]*")  # heading, quote, list and table marks before an anchor
_ANCHOR_PREFIXES = (8, 5)  # when the whole anchor is not found, its first words may still be


def parse_boundaries(lines: str) -> list[tuple[str, str]]:
    """(topic, starts) pairs from `TOPIC: X | STARTS: Y` lines; other lines are ignored."""
    boundaries = []
    for line in lines.splitlines():
        match = _BOUNDARY_LINE.search(line)
        if match is None:
            continue
        topic, starts = _clean_topic(match.group("topic").strip(_QUOTES)), match.group("starts").strip(_QUOTES)
        if topic and starts:
            boundaries.append((topic, starts))
    return boundaries


def slice_at_anchors(text: str, boundaries: list[tuple[str, str]]) -> list[TextChunk]:
    """The original text cut where each anchor starts, in order; [] when no anchor is found.

    Anchors match regardless of case, whitespace, punctuation and markdown marks; anchors that are not
    found after the previous one are skipped; text before the first anchor belongs to the first chunk.
    """
    starts: list[tuple[int, str]] = []
    cursor = 0
    for topic, anchor in boundaries:
        found = _find_anchor(text, anchor, cursor)
        if found is None or (starts and found[0] <= starts[-1][0]):
            continue
        starts.append((found[0], _clean_topic(topic)))
        cursor = found[1]
    if not starts:
        return []
    starts[0] = (0, starts[0][1])
    ends = [position for position, _ in starts[1:]] + [len(text)]
    chunks = [
        TextChunk(topic=topic, text=text[start:end].strip()) for (start, topic), end in zip(starts, ends, strict=True)
    ]
    return [chunk for chunk in chunks if chunk.text]


def _find_anchor(text: str, anchor: str, cursor: int) -> tuple[int, int] | None:
    """(where the anchor's section starts, where the matched words end) after `cursor`, or None."""
    words = _WORD.findall(anchor)
    for count in (len(words), *(n for n in _ANCHOR_PREFIXES if n < len(words))):
        match = _anchor_pattern(words[:count]).search(text, cursor) if count else None
        if match is not None:
            line_start = text.rfind("\n", 0, match.start()) + 1
            # "## Prices" anchored as "Prices": the heading marks belong to the new chunk, not the old one.
            start = line_start if _LINE_PREFIX.fullmatch(text, line_start, match.start()) else match.start()
            return max(_absorb_headings(text, start, cursor), cursor), match.end()
    return None


def _absorb_headings(text: str, start: int, floor: int) -> int:
    """Heading lines right above an anchor open its section ("## Booking" over "Book by phone...")."""
    while start > floor and text[start - 1] == "\n":
        line_start = text.rfind("\n", 0, start - 1) + 1
        line = text[line_start : start - 1].strip()
        if line_start < floor or (line and not _HEADING.match(line)):
            break
        start = line_start
    return start


def _anchor_pattern(words: list[str]) -> re.Pattern[str]:
    # Any run of non-word characters between the words (spaces, punctuation, markdown), any case, е = ё.
    escaped = [re.sub("[еёЕЁ]", "[её]", re.escape(word)) for word in words]
    return re.compile(r"(?<![^\W_])" + r"[\W_]+".join(escaped), re.IGNORECASE)


# --- semantic chunking -----------------------------------------------------------------------------------


class Section(BaseModel):
    topic: str = Field(
        description="A short label of what this section is about (2-6 words), in the language of the text."
    )
    starts: str = Field(
        description=(
            "The exact opening words of the section (5-10 words), copied verbatim from the text, "
            "including a heading if the section starts with one. Never paraphrase or translate."
        )
    )


class Boundaries(BaseModel):
    sections: list[Section] = Field(
        description="The sections in the order they appear; together they cover the whole text from its start."
    )


BOUNDARIES_SYSTEM = """\
You split a web page or document into sections by topic, for a search index of a company's knowledge base.
Find where each topic starts. Give every section a short topic label and the exact words it starts with,
as in the plain-text form "TOPIC: <label> | STARTS: <first words>".
Rules:
- The first section starts at the very beginning of the text.
- A section is one coherent topic (a service, a price list, delivery terms, a FAQ group...), usually
  a few paragraphs; do not cut inside a table, a list or a paragraph.
- STARTS must be copied character for character from the text, so that it can be found in it.
- Sections are listed in the order they appear and do not overlap."""


def chunk_semantic(text: str, *, title: str, project: Project, max_chars: int = DEFAULT_MAX_CHARS) -> list[TextChunk]:
    """Topic chunks from the project's extraction model: one call per page (per window of a very long one)."""
    if not text.strip():
        return []
    chunks = [
        chunk
        for window in _split_to_size(text, MAX_WINDOW_CHARS)
        for chunk in _chunk_window(window, title=title, project=project, max_chars=max_chars)
    ]
    return [
        TextChunk(topic=chunk.topic or _clean_topic(title) or f"Part {number}", text=chunk.text)
        for number, chunk in enumerate(chunks, start=1)
    ]


def _chunk_window(text: str, *, title: str, project: Project, max_chars: int) -> list[TextChunk]:
    try:
        boundaries = _ask_boundaries(text, title=title, project=project)
    except LLMError as exc:
        logger.warning("chunk boundaries failed, simple chunking instead: %s", exc, extra={"project_id": project.pk})
        return chunk_simple(text, title=title, max_chars=max_chars)
    sliced = slice_at_anchors(text, boundaries)
    if not sliced:
        logger.warning(
            "none of the %d chunk boundaries was found in the text, simple chunking instead",
            len(boundaries),
            extra={"project_id": project.pk},
        )
        return chunk_simple(text, title=title, max_chars=max_chars)
    # An oversized topic is split by paragraphs and keeps its topic: inner headings do not rename it.
    return [
        TextChunk(topic=chunk.topic, text=piece) for chunk in sliced for piece in _split_to_size(chunk.text, max_chars)
    ]


def _ask_boundaries(text: str, *, title: str, project: Project) -> list[tuple[str, str]]:
    result = structured_output(
        response_model=Boundaries,
        system=BOUNDARIES_SYSTEM,
        user=f"Title: {title}\n\n<text>\n{text}\n</text>",
        chain=resolve_chain(project=project, slot="extract"),
        context=CallContext(purpose="chunk_boundaries", project_id=project.pk),
        max_tokens=BOUNDARY_MAX_TOKENS,
        temperature=BOUNDARY_TEMPERATURE,
    )
    return [(section.topic, section.starts) for section in result.output.sections]
