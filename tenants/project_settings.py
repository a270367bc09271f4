"""One parser and one validator per project setting, shared by the console form, `project set` and the API.

A setting is typed as text (a form field, a command argument) and stored as a Python value. `parse`
turns the text into the value or raises `SettingInvalid` with a message safe to show; `format` turns the
stored value back into the text an operator would type. Validators also sit on the model fields, so a
value that reaches `full_clean` by any other road is checked by the same rule.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import time
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError


class SettingInvalid(ValueError):
    """A setting's text that cannot be used; the message is safe to show to the operator."""


# Telegram bot tokens: the bot's numeric id, a colon, then 35 characters of [A-Za-z0-9_-] (seen lengths vary).
BOT_TOKEN_RE = re.compile(r"^\d{3,15}:[A-Za-z0-9_-]{30,80}$")
MODEL_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*/\S+$")

DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION_PART_RE = re.compile(r"(\d+)\s*([smhd])")
MAX_FOLLOWUP_STEPS = 10
MAX_FOLLOWUP_SECONDS = 30 * 86400
MAX_OPEN_INTRODUCTIONS = 100
MAX_MATCHING_INTERVAL_MINUTES = 7 * 24 * 60
MAX_OUTCOME_DELAY_HOURS = 90 * 24
MIN_BUSINESS_QUIET_SECONDS = 5
MAX_BUSINESS_QUIET_SECONDS = 30 * 86400
# The embedding model families of bots.llm.embedding_adapters (tenants sits below bots, so the names are
# listed here and a test keeps both lists equal); "auto" chooses the family from the model's name.
EMBEDDING_ADAPTERS = ("auto", "identity", "openai", "e5", "e5-instruct", "qwen3", "bge", "bge-m3", "nomic")


# Validators (model fields and parsers alike) ----------------------------------------------------------


def validate_bot_token(value: str) -> None:
    if value and not BOT_TOKEN_RE.match(value):
        # Never echo the value: it may be a real token with a typo.
        raise ValidationError(
            "This is not a Telegram bot token: it looks like 123456789:AA... (digits, a colon, then 30 or more "
            "letters, digits, _ or -), as @BotFather gives it."
        )


def validate_followup_steps(value: Any) -> None:
    if not isinstance(value, list) or not all(isinstance(step, int) and not isinstance(step, bool) for step in value):
        raise ValidationError("Follow-up steps are a list of whole seconds.")
    if len(value) > MAX_FOLLOWUP_STEPS:
        raise ValidationError(f"At most {MAX_FOLLOWUP_STEPS} follow-up steps.")
    for step in value:
        if step < 60:
            raise ValidationError(f"Each follow-up waits at least 1m ({format_duration(step)} is too short).")
        if step > MAX_FOLLOWUP_SECONDS:
            raise ValidationError(f"Each follow-up waits at most 30d ({format_duration(step)} is too long).")


def validate_timezone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"Unknown time zone {value!r}; use a name like Europe/Berlin or UTC.") from None


def validate_model_chain(value: str) -> None:
    for part in (p.strip() for p in value.split(",")):
        if value.strip() and not MODEL_ID_RE.match(part):
            raise ValidationError(
                f"{part!r} is not provider/model (e.g. openai/gpt-4.1-mini); chain several with commas."
            )


def validate_embedding_adapter(value: str) -> None:
    if value not in EMBEDDING_ADAPTERS:
        raise ValidationError(f"Unknown embedding adapter {value!r}; one of: {', '.join(EMBEDDING_ADAPTERS)}.")


def validate_similarity_threshold(value: float | None) -> None:
    if value is not None and not -1.0 <= value <= 1.0:
        raise ValidationError("The similarity threshold is a cosine similarity between -1 and 1.")


# Durations ------------------------------------------------------------------------------------------------


def format_duration(seconds: int) -> str:
    """300 -> "5m", 86400 -> "24h" (hours up to 48, then days), 90 -> "1m30s"."""
    if seconds <= 0:
        return f"{seconds}s"
    if seconds % 86400 == 0 and seconds > 2 * 86400:
        return f"{seconds // 86400}d"
    parts = []
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            count, seconds = divmod(seconds, size)
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_duration(text: str) -> int:
    """ "5m", "24h", "1h30m", "2d", "90s"; a bare number is seconds (what the console used to take)."""
    raw = text.strip().lower().replace(" ", "")
    if raw.lstrip("-").isdigit():
        return int(raw)
    if not raw or DURATION_PART_RE.sub("", raw) != "":
        raise SettingInvalid(f"{text.strip()!r} is not a duration; write e.g. 5m, 40m, 24h or 2d")
    return sum(int(count) * DURATION_UNITS[unit] for count, unit in DURATION_PART_RE.findall(raw))


def parse_followup_steps(text: str) -> list[int]:
    steps = [parse_duration(part) for part in text.split(",") if part.strip()]
    _check(validate_followup_steps, steps)
    return steps


def format_followup_steps(value: list[int] | None) -> str:
    return ", ".join(format_duration(step) for step in value or [])


def parse_business_quiet_period(text: str) -> int:
    """How long the bot keeps out of a business chat after the owner wrote there: 5s to 30d."""
    seconds = parse_duration(text)
    if not MIN_BUSINESS_QUIET_SECONDS <= seconds <= MAX_BUSINESS_QUIET_SECONDS:
        raise SettingInvalid(f"a duration from {MIN_BUSINESS_QUIET_SECONDS}s to 30d, e.g. 30m or 2h")
    return seconds


# The other kinds of text ---------------------------------------------------------------------------------


def _check(validator: Callable[[Any], None], value: Any) -> None:
    try:
        validator(value)
    except ValidationError as exc:
        raise SettingInvalid(" ".join(exc.messages)) from None


def _text(text: str) -> str:
    return text


def _optional_int(text: str) -> int | None:
    if not text.strip():
        return None
    try:
        return int(text.strip())
    except ValueError:
        raise SettingInvalid(f"{text.strip()!r} is not a whole number") from None


def _optional_decimal(text: str) -> Decimal | None:
    if not text.strip():
        return None
    try:
        value = Decimal(text.strip().lstrip("$"))
    except InvalidOperation:
        raise SettingInvalid(f"{text.strip()!r} is not an amount in USD (e.g. 6 or 12.50)") from None
    if not value.is_finite() or value <= 0:
        raise SettingInvalid("an amount in USD above 0; empty for none")
    return value


def _optional_float(text: str) -> float | None:
    if not text.strip():
        return None
    try:
        value = float(text.strip())
    except ValueError:
        raise SettingInvalid(f"{text.strip()!r} is not a number") from None
    _check(validate_similarity_threshold, value)
    return value


def _whole_number(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise SettingInvalid(f"{text.strip()!r} is not a whole number") from None
        if not low <= value <= high:
            raise SettingInvalid(f"a whole number from {low} to {high}")
        return value

    return parse


_BOOLEANS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def _yes_or_no(text: str) -> bool:
    try:
        return _BOOLEANS[text.strip().lower()]
    except KeyError:
        raise SettingInvalid(f"{text.strip()!r} is not yes or no (true/false, on/off, 1/0)") from None


def _format_yes_or_no(value: bool) -> str:
    return "yes" if value else "no"


def _optional_time(text: str) -> time | None:
    if not text.strip():
        return None
    try:
        return time.fromisoformat(text.strip())
    except ValueError:
        raise SettingInvalid(f"{text.strip()!r} is not a time of day (HH:MM)") from None


def _bot_token(text: str) -> str:
    _check(validate_bot_token, text.strip())
    return text.strip()


def _timezone(text: str) -> str:
    _check(validate_timezone, text.strip())
    return text.strip()


def _model_chain(text: str) -> str:
    _check(validate_model_chain, text.strip())
    return text.strip()


def _embedding_adapter(text: str) -> str:
    value = text.strip().lower() or "auto"
    _check(validate_embedding_adapter, value)
    return value


def _format_plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, time):
        return value.strftime("%H:%M")
    return str(value)


@dataclass(frozen=True)
class ProjectSetting:
    name: str
    parse: Callable[[str], Any]
    format: Callable[[Any], str] = _format_plain
    secret: bool = False  # never shown back


PROJECT_SETTINGS: dict[str, ProjectSetting] = {
    setting.name: setting
    for setting in [
        ProjectSetting("name", _text),
        ProjectSetting("language", _text),
        ProjectSetting("bot_token", _bot_token, secret=True),
        ProjectSetting("webhook_secret", _text, secret=True),
        ProjectSetting("lead_group_id", _optional_int),
        ProjectSetting("prompt", _text),
        ProjectSetting("start_reply", _text),
        ProjectSetting("unavailable_reply", _text),
        ProjectSetting("price_url", _text),
        ProjectSetting("model_toolcaller", _model_chain),
        ProjectSetting("model_extract", _model_chain),
        ProjectSetting("model_summary", _model_chain),
        ProjectSetting("model_transcription", _model_chain),
        ProjectSetting("weekly_budget_usd", _optional_decimal),
        ProjectSetting("weekly_cap_usd", _optional_decimal),
        ProjectSetting("followup_steps", parse_followup_steps, format_followup_steps),
        ProjectSetting("quiet_hours_start", _optional_time),
        ProjectSetting("quiet_hours_end", _optional_time),
        ProjectSetting("timezone", _timezone),
        ProjectSetting("similarity_threshold", _optional_float),
        ProjectSetting("similarity_threshold_seeker", _optional_float),
        ProjectSetting("similarity_threshold_provider", _optional_float),
        ProjectSetting("matching_max_open_introductions", _whole_number(1, MAX_OPEN_INTRODUCTIONS)),
        ProjectSetting("matching_interval_minutes", _whole_number(1, MAX_MATCHING_INTERVAL_MINUTES)),
        ProjectSetting("matching_paused", _yes_or_no, _format_yes_or_no),
        ProjectSetting("matching_outcome_delay_hours", _whole_number(0, MAX_OUTCOME_DELAY_HOURS)),
        ProjectSetting("business_quiet_seconds", parse_business_quiet_period, format_duration),
        ProjectSetting("embedding_adapter", _embedding_adapter),
    ]
}


def setting_parse(*, key: str, text: str) -> Any:
    """The stored value for `text` typed into setting `key`; raises SettingInvalid (message names the key)."""
    setting = PROJECT_SETTINGS.get(key)
    if setting is None:
        raise SettingInvalid(f"unknown setting {key!r}; one of: {', '.join(sorted(PROJECT_SETTINGS))}")
    try:
        return setting.parse(text)
    except SettingInvalid as exc:
        raise SettingInvalid(f"{key}: {exc}") from None
