"""Tool-call arguments that the model sent as JSON text, and what happens when that text is broken.

Choice: arguments that do not parse as a JSON object do NOT fail the call (retrying would likely get the
same output and waste tokens). They become a tool_use whose input is `{RAW_ARGUMENTS_KEY: "<text>"}`;
the engine detects it with `unparsed_arguments()` and answers with an error tool_result, so the model
can correct itself on the next round-trip. Replayed history stays valid JSON either way.
"""

import json
from typing import Any

from bots.llm.types import ToolUseBlock

RAW_ARGUMENTS_KEY = "_raw_arguments"


def parse_tool_arguments(raw: object) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}  # some OpenAI-compatible servers send "" for a tool without parameters
    text = raw if isinstance(raw, str) else json.dumps(raw)
    try:
        parsed = json.loads(text)
    except ValueError:
        return {RAW_ARGUMENTS_KEY: text}
    return parsed if isinstance(parsed, dict) else {RAW_ARGUMENTS_KEY: text}


def unparsed_arguments(block: ToolUseBlock) -> str | None:
    """The raw argument text when the model's arguments did not parse, else None."""
    raw = block.input.get(RAW_ARGUMENTS_KEY)
    return raw if isinstance(raw, str) and len(block.input) == 1 else None
