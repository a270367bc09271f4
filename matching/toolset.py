"""The matching agent's tools: it keeps the profile itself while it talks (save_profile, get_profile)."""

from typing import Any

from django.utils.translation import override

from bots.llm.types import ToolSpec
from bots.texts import in_language
from bots.toolsets import ToolContext, ToolError
from matching import texts
from matching.models import Profile
from matching.profiles import ProfileInvalid, profile_card_send, profile_save
from matching.selectors import profile_for_chat
from tenants.models import Project

_TEXT = {"type": "string"}

SAVE_PROFILE = ToolSpec(
    name="save_profile",
    description=(
        "Save what you learned about the user. Omit a field to keep its saved value; an empty string clears it. "
        "Set complete=true once you know enough to look for matches (roles, summary and matching_summary are "
        "required then); complete=false while you are still learning."
    ),
    parameters={
        "type": "object",
        "properties": {
            "roles": {
                "type": "string",
                "enum": ["seeker", "provider", "both"],
                "description": "seeker: looks for work; provider: offers work (hires, contracts); both.",
            },
            "summary": {**_TEXT, "description": "Short description of the person for their profile card."},
            "location": {**_TEXT, "description": "City / country / time zone."},
            "work_format": {**_TEXT, "description": "Remote, office or hybrid; full-time, part-time or contract."},
            "rates": {**_TEXT, "description": "Expected rate or salary, or the budget offered."},
            "availability": {**_TEXT, "description": "When they can start, hours per week."},
            "private_observations": {
                **_TEXT,
                "description": "Your private notes about the user; never shown to anyone else. Rewrite whole.",
            },
            "matching_summary": {
                **_TEXT,
                "description": "2-4 sentences, third person: what they offer and look for (no names or contacts).",
            },
            "complete": {"type": "boolean", "description": "True when the profile is enough to look for matches."},
        },
        "required": ["complete"],
        "additionalProperties": False,
    },
)

GET_PROFILE = ToolSpec(
    name="get_profile",
    description="Read the user's saved profile and its state.",
    parameters={"type": "object", "properties": {}, "additionalProperties": False},
)

SNAPSHOT_FIELDS = (
    "role", "summary", "location", "work_format", "rates", "availability", "private_observations", "matching_summary",
)  # fmt: skip


def profile_as_text(profile: Profile | None, project: Project) -> str:
    """The saved profile as the model reads it (field names as in save_profile)."""
    with override(project.language):
        if profile is None or not profile.has_data:
            return str(texts.SNAPSHOT_EMPTY)
        header = str(texts.SNAPSHOT_HEADER) % {"state": f"{profile.state}: {texts.STATE_EXPLAINED[profile.state]}"}
    lines = [f"{'roles' if name == 'role' else name}: {getattr(profile, name) or '-'}" for name in SNAPSHOT_FIELDS]
    return "\n".join([header, *lines])


class MatchingToolset:
    def __init__(self, project: Project) -> None:
        self.project = project

    def specs(self) -> list[ToolSpec]:
        return [SAVE_PROFILE, GET_PROFILE]

    def execute(self, name: str, arguments: dict[str, Any], context: ToolContext) -> str:
        if name == GET_PROFILE.name:
            return profile_as_text(profile_for_chat(project=context.project, chat=context.chat), context.project)
        if name != SAVE_PROFILE.name:
            raise ToolError(f"unknown tool {name!r}")
        complete = arguments.get("complete")
        if not isinstance(complete, bool):
            raise ToolError("complete must be true or false")
        changes = {("role" if key == "roles" else key): value for key, value in arguments.items() if key != "complete"}
        try:
            saved = profile_save(project=context.project, chat=context.chat, changes=changes, complete=complete)
        except ProfileInvalid as exc:
            raise ToolError(str(exc)) from exc
        if saved.card_due:
            profile_card_send(profile=saved.profile)
        return self._saved_result(saved.profile, card_sent=saved.card_due)

    @staticmethod
    def _saved_result(profile: Profile, *, card_sent: bool) -> str:
        if card_sent and profile.state == Profile.State.UPDATED:
            return "saved; matching is paused until the user confirms the changed profile with the card's button"
        if card_sent:
            return "saved; the user now sees the profile card with a Start matching button: ask them to press it"
        if profile.state == Profile.State.ONBOARDING:
            return "saved; the profile is not complete yet"
        return f"saved (state: {profile.state})"

    def preamble(self, project: Project) -> str:
        return in_language(project, texts.PREAMBLE)

    def state_snapshot(self, context: ToolContext) -> str:
        return profile_as_text(profile_for_chat(project=context.project, chat=context.chat), context.project)

    def reply_without_model(self, context: ToolContext) -> str | None:
        return None

    def reply_markup(self, context: ToolContext, reply: str) -> dict[str, Any] | None:
        return None
