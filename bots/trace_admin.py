"""Admin for per-turn traces: what the model was asked, which tools it called with what, and how long each took."""

import json

from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from bots.models import TurnTrace
from tenants.admin_scoping import ProjectScopedAdmin, ReadOnlyAdminMixin


@admin.register(TurnTrace)
class TurnTraceAdmin(ReadOnlyAdminMixin, ProjectScopedAdmin):
    list_display = ["created_at", "project", "chat", "purpose", "model", "round_trips", "tool_names", "took",
                    "tokens", "cost_usd", "overflowed"]  # fmt: skip
    list_filter = ["project", "purpose", "overflowed"]
    list_select_related = ["project", "turn__chat", "turn__chat__project"]
    search_fields = ["turn__chat__telegram_chat_id", "turn__chat__username", "model"]
    date_hierarchy = "created_at"
    fields = ["project", "chat", "turn_text", "purpose", "model", "round_trips", "duration_ms", "tokens_in",
              "tokens_out", "cost_usd", "overflowed", "generation", "created_at", "timeline"]  # fmt: skip
    readonly_fields = fields

    @admin.display(description="chat")
    def chat(self, trace: TurnTrace) -> str:
        return str(trace.turn.chat)

    @admin.display(description="time", ordering="duration_ms")
    def took(self, trace: TurnTrace) -> str:
        return f"{trace.duration_ms / 1000:.1f} s"

    @admin.display(description="tokens in · out")
    def tokens(self, trace: TurnTrace) -> str:
        return f"{trace.tokens_in} · {trace.tokens_out}"

    @admin.display(description="tools")
    def tool_names(self, trace: TurnTrace) -> str:
        return ", ".join(trace.tools_called) or "-"

    @admin.display(description="turn")
    def turn_text(self, trace: TurnTrace) -> SafeString:
        return format_html("<b>user:</b> {}<br><b>reply:</b> {}", trace.turn.user_text, trace.turn.reply)

    @admin.display(description="steps")
    def timeline(self, trace: TurnTrace) -> SafeString:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{} ms</td><td><pre>{}</pre></td></tr>",
            ((index, *self._step_row(step)) for index, step in enumerate(trace.steps, 1)),
        )
        return format_html("<table><tr><th>#</th><th>step</th><th>time</th><th>detail</th></tr>{}</table>", rows)

    @staticmethod
    def _step_row(step: dict) -> tuple[str, int, str]:
        if step.get("kind") == "outcome":
            return f"outcome: {step.get('outcome') or '-'}", 0, step.get("error", "")
        if step.get("error"):  # a failed attempt of a turn no model answered
            return (
                f"model {step.get('model')} (attempt {step.get('attempt')}, failed)",
                step.get("ms", 0),
                step["error"],
            )
        if step.get("kind") == "tool":
            title = f"tool {step.get('name')}" + (" (error)" if step.get("is_error") else "")
            detail = f"arguments: {json.dumps(step.get('input'), ensure_ascii=False)}\nresult: {step.get('result')}"
        else:
            title = f"model {step.get('model')}"
            calls = "\n".join(f"call {c['name']}({json.dumps(c['input'], ensure_ascii=False)})"
                              for c in step.get("tool_calls", []))  # fmt: skip
            detail = (f"tokens {step.get('tokens_in')} in / {step.get('tokens_out')} out\n"
                      f"{step.get('text') or ''}\n{calls}").strip()  # fmt: skip
        return title, step.get("ms", 0), detail
