"""Structured single-shot outputs (extraction, qualification, summaries) with instructor and Pydantic.

Same chain, retries, fallbacks and recording as tool calls (method "structured"). Inside one attempt
instructor may ask once more when the output does not validate (`max_retries=1`); output that still does
not validate is `UnparseableOutput` for that backend and the chain tries the next one. Instructor wraps
every failure in its own exception, so the attempt watches instructor's hooks to tell what really went
wrong: the API call raised (classified like any call), the body was malformed (transient), or the model
answered and the answer never validated (UnparseableOutput).

Usage and cost come from the raw completion of `create_with_completion`, on which instructor sums the
usage of every completion of the attempt (those that failed validation were billed too).
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

from bots.llm.chain import AttemptResult, run_chain
from bots.llm.errors import MalformedResponse, UnparseableOutput
from bots.llm.keys import next_api_key
from bots.llm.slots import ModelRef
from bots.llm.types import CallContext, LLMError, Usage

if TYPE_CHECKING:
    from instructor.core import InstructorError

T = TypeVar("T", bound=BaseModel)

VALIDATION_RETRIES = 1


@dataclass(frozen=True)
class StructuredResult(Generic[T]):
    output: T
    usage: Usage
    cost_usd: float
    provider: str
    model: str  # provider/model


def structured_output(
    *,
    response_model: type[T],
    system: str,
    user: str,
    chain: list[ModelRef],
    context: CallContext,
    max_tokens: int = 1024,
    temperature: float = 0.1,
) -> StructuredResult[T]:
    """Raises UnparseableOutput when no backend produced valid output, AllBackendsFailed when none answered."""

    # instructor and the SDK backends take seconds to import; loaded on the first call, not at start-up.
    import instructor
    from instructor.core import InstructorError

    from bots.llm import anthropic_backend, openai_backend  # (the SDKs, see above)

    def attempt(ref: ModelRef) -> AttemptResult[T]:
        if ref.protocol == "anthropic":
            client = instructor.from_anthropic(
                anthropic_backend.anthropic_client(api_key=next_api_key(protocol="anthropic")),
                mode=instructor.Mode.TOOLS,
            )
            # No temperature: the Anthropic API (2026-10-21) rejects sampling parameters, see anthropic_backend.
            params: dict[str, Any] = {"system": system, "messages": [{"role": "user", "content": user}]}
            watch = _Watch(check=anthropic_backend.check_message, usage=anthropic_backend.message_usage)
        else:
            client = instructor.from_openai(
                openai_backend.openai_client(api_key=next_api_key(protocol="openai")),
                mode=instructor.Mode.TOOLS,
            )
            params = {
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
                "temperature": temperature,
            }
            watch = _Watch(check=openai_backend.check_completion, usage=openai_backend.completion_usage)
        client.on("completion:response", watch.on_response)
        client.on("completion:error", watch.on_error)
        try:
            output, _raw_completion = client.create_with_completion(
                model=ref.model,
                response_model=response_model,
                max_retries=VALIDATION_RETRIES,
                max_tokens=max_tokens,
                **params,
            )
        except InstructorError as exc:
            explained = watch.explain(exc)
            if isinstance(explained, LLMError):
                raise explained from exc
            raise explained from explained.__cause__  # the SDK's own error, its cause kept for classification
        return AttemptResult(value=_as_model(response_model, output), usage=watch.usage_total())

    outcome = run_chain(chain=chain, context=context, method="structured", attempt=attempt)
    return StructuredResult(
        output=outcome.value,
        usage=outcome.usage,
        cost_usd=float(outcome.cost_usd),
        provider=outcome.ref.provider,
        model=outcome.ref.id,
    )


def _as_model(response_model: type[T], output: BaseModel) -> T:
    """Instructor returns a subclass of its own making; hand back exactly the caller's (validated) model."""
    if type(output) is response_model:
        return output
    values = {name: getattr(output, name) for name in response_model.model_fields}
    return response_model.model_construct(_fields_set=set(output.model_fields_set), **values)


class _Watch:
    """What instructor saw during one attempt, in order: raw responses and API-call errors."""

    def __init__(self, *, check: Callable[[object], None], usage: Callable[[Any], Usage]) -> None:
        self._check = check
        self._usage = usage
        self.events: list[tuple[str, Any]] = []

    def on_response(self, response: Any, *args: Any, **kwargs: Any) -> None:
        self.events.append(("response", response))

    def on_error(self, error: Exception, *args: Any, **kwargs: Any) -> None:
        self.events.append(("error", error))

    def usage_total(self) -> Usage:
        # Instructor accumulates usage into each completion it sees (running total), so the latest
        # completion that carries usage, i.e. the raw completion on success, holds the attempt's total.
        for kind, response in reversed(self.events):
            if kind == "response" and getattr(response, "usage", None) is not None:
                return self._usage(response)
        return Usage()

    def explain(self, exc: "InstructorError") -> Exception:
        """Turn instructor's wrapper into the error our chain classifies."""
        from instructor.core import IncompleteOutputException  # loaded by structured_output already

        if self.events and self.events[-1][0] == "error":
            return self.events[-1][1]  # the API call itself failed: 429, 5xx, timeout, bad JSON body...
        if self.events:
            try:
                self._check(self.events[-1][1])
            except MalformedResponse as malformed:
                return MalformedResponse(str(malformed), usage=self.usage_total())
        elif isinstance(exc.__cause__, Exception):
            return exc.__cause__  # failed before any hook fired
        if isinstance(exc, IncompleteOutputException):
            return UnparseableOutput("output truncated at max_tokens", usage=self.usage_total())
        last = exc.__cause__ or exc
        reason = " ".join(str(last).split())[:300]
        return UnparseableOutput(f"output did not validate: {reason}", usage=self.usage_total())
