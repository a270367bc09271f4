from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.html import format_html
from django.utils.safestring import SafeString
from unfold.admin import ModelAdmin

from bots import trace_admin  # noqa: F401  (registers the per-turn trace admin, kept in its own module)
from bots.models import BusinessConnection, Generation, LLMCall, ModelPrice, QuarantinedUpdate
from bots.selectors import spend_by_week
from tenants.admin_scoping import ProjectScopedAdmin, ReadOnlyAdminMixin
from tenants.selectors import projects_for_user


@admin.register(Generation)
class GenerationAdmin(ReadOnlyAdminMixin, ProjectScopedAdmin):
    list_display = ["__str__", "project", "status", "scheduled_for", "finished_at", "attempts", "tokens", "cost_usd"]
    list_filter = ["project", "kind", "status"]
    date_hierarchy = "scheduled_for"
    change_list_template = "admin/bots/generation/change_list.html"

    @admin.display(description="tokens in · out")
    def tokens(self, generation: Generation) -> str:
        return f"{generation.tokens_in} · {generation.tokens_out}"

    def get_urls(self) -> list[URLPattern]:
        spend = self.admin_site.admin_view(self.spend_view)
        return [path("spend/", spend, name="bots_generation_spend"), *super().get_urls()]

    def spend_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise Http404("No page here.")
        rows = spend_by_week(projects=projects_for_user(user=request.user))
        context = {**self.admin_site.each_context(request), "title": "LLM spend per week", "rows": rows}
        return TemplateResponse(request, "admin/bots/spend.html", context)


@admin.register(LLMCall)
class LLMCallAdmin(ReadOnlyAdminMixin, ProjectScopedAdmin):
    list_display = ["created_at", "project", "purpose", "model", "status", "attempt", "tokens", "latency_ms",
                    "cost_usd"]  # fmt: skip
    list_filter = ["project", "purpose", "method", "status", "provider"]
    date_hierarchy = "created_at"

    @admin.display(description="tokens in · cached · out")
    def tokens(self, call: LLMCall) -> str:
        return f"{call.tokens_in} · {call.tokens_cached} · {call.tokens_out}"


@admin.register(ModelPrice)
class ModelPriceAdmin(ModelAdmin):
    list_display = ["model", "input_per_million", "cached_input_per_million", "output_per_million", "audio_per_minute",
                    "updated_at"]  # fmt: skip
    search_fields = ["model"]

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.is_superuser  # prices are platform-wide, not a tenant's

    has_add_permission = has_delete_permission = has_change_permission


@admin.register(QuarantinedUpdate)
class QuarantinedUpdateAdmin(ReadOnlyAdminMixin, ProjectScopedAdmin):
    """Webhook bodies the code could not store: answered 200 (so Telegram stopped retrying), kept here raw."""

    BODY_SHOWN = 20_000  # characters; the whole body stays in the database

    list_display = ["last_received_at", "project", "update_id", "deliveries", "short_error"]
    list_filter = ["project"]
    search_fields = ["update_id", "error"]
    date_hierarchy = "last_received_at"
    fields = ["project", "update_id", "deliveries", "first_received_at", "last_received_at", "error", "raw_body",
              "body_sha256"]  # fmt: skip
    readonly_fields = fields

    @admin.display(description="error")
    def short_error(self, update: QuarantinedUpdate) -> str:
        return update.error[:120]

    @admin.display(description="body as received")
    def raw_body(self, update: QuarantinedUpdate) -> SafeString:
        body = bytes(update.body)
        text = body.decode("utf-8", errors="backslashreplace")
        more = f"\n… {len(text) - self.BODY_SHOWN} more characters" if len(text) > self.BODY_SHOWN else ""
        return format_html(
            '<pre style="white-space: pre-wrap; max-height: 40em; overflow: auto">{}{}</pre><p>{} bytes</p>',
            text[: self.BODY_SHOWN], more, len(body),
        )  # fmt: skip


@admin.register(BusinessConnection)
class BusinessConnectionAdmin(ReadOnlyAdminMixin, ProjectScopedAdmin):
    """Telegram Business accounts connected to a project's bot, as Telegram last reported them."""

    list_display = ["__str__", "project", "owner", "may_reply_display", "granted_rights", "is_enabled",
                    "connected_at", "updated_at"]  # fmt: skip
    list_filter = ["project", "is_enabled", "can_reply"]
    search_fields = ["connection_id", "username", "first_name", "=user_id"]
    fields = ["project", "connection_id", "owner", "user_chat_id", "is_enabled", "can_reply", "granted_rights",
              "connected_at", "last_update_id", "created_at", "updated_at"]  # fmt: skip
    readonly_fields = fields

    @admin.display(description="owner")
    def owner(self, connection: BusinessConnection) -> str:
        if connection.user_id is None:
            return "unconfirmed: Telegram never reported this connection (reconnect the bot in Telegram Business)"
        name = " ".join(part for part in (connection.first_name, connection.last_name) if part)
        handle = f" @{connection.username}" if connection.username else ""
        return f"{name}{handle} (user {connection.user_id})"

    @admin.display(description="answers customers", boolean=True)
    def may_reply_display(self, connection: BusinessConnection) -> bool:
        return connection.may_reply

    @admin.display(description="rights granted")
    def granted_rights(self, connection: BusinessConnection) -> str:
        return ", ".join(sorted(connection.rights)) or "none"
