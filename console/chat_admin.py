"""Conversations in the console: the list, the transcript, human takeover and the user's data duties."""

import json

from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from unfold.admin import TabularInline

from bots.business_connections import business_connection_for
from bots.chat_transcript import chat_transcript
from bots.models import Chat, Turn
from bots.takeover import TakeoverRefused, chat_hand_back, chat_operator_reply, chat_take_over
from console.data_duties import ErasureRefused, chat_data_export, telegram_user_erase
from leads.models import Lead
from tenants.admin_scoping import ProjectScopedAdmin, ReadOnlyAdminMixin, ScopedInlineMixin
from tenants.models import Membership
from tenants.roles import user_has_role

# Changelists do not load the console's stylesheet: the red pill is drawn inline.
PILL_BAD = "background:#fee2e2;color:#991b1b;padding:2px 8px;border-radius:999px;font-size:11px;font-weight:600"


class TurnInline(ScopedInlineMixin, ReadOnlyAdminMixin, TabularInline):
    model = Turn
    fields = ["created_at", "trigger", "status", "user_text", "reply", "model", "cost_usd"]
    readonly_fields = fields
    ordering = ["-created_at"]
    extra = 0
    can_delete = False


@admin.register(Chat)
class ChatAdmin(ProjectScopedAdmin):
    """Conversations: the list with search, the transcript, human takeover and the user's data duties."""

    list_display = ["__str__", "project", "conversation_state", "telegram_chat_id", "channel", "messages_count",
                    "unanswered_turns", "last_user_message_at"]  # fmt: skip
    list_filter = ["project", "channel", ("paused_at", admin.EmptyFieldListFilter),
                   ("business_connection_id", admin.EmptyFieldListFilter)]  # fmt: skip
    search_fields = ["username", "first_name", "last_name", "=telegram_chat_id", "messages__text"]
    list_select_related = ["project"]
    ordering = ["-last_user_message_at"]
    readonly_fields = ["project", "telegram_chat_id", "user_id", "username", "first_name", "last_name", "state",
                       "blocked_at", "last_user_message_at", "created_at", "business_connection_id"]  # fmt: skip
    fields = [*readonly_fields, "debug", "paused_at", "paused_until"]
    inlines = [TurnInline]
    read_only_actions = ("export_json",)
    actions = ["take_over", "hand_back", "export_json"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Chat]:
        failed = Q(turns__outcome__in=Turn.NOT_ANSWERED) | Q(turns__status=Turn.Status.FAILED)
        return (
            super()
            .get_queryset(request)
            .annotate(
                messages_total=Count("messages", distinct=True),
                not_answered=Count("turns", filter=failed, distinct=True),
            )
        )

    def has_add_permission(self, request: HttpRequest, *args: object) -> bool:
        return False  # chats come from Telegram

    @admin.display(description="Messages", ordering="messages_total")
    def messages_count(self, chat: Chat) -> int:
        return chat.messages_total

    @admin.display(description="Not answered", ordering="not_answered")
    def unanswered_turns(self, chat: Chat) -> str:
        """Turns that failed, were paused or got the safe reply: marked here so that a glance tells."""
        if not chat.not_answered:
            return "–"
        return format_html(
            '<span style="{}">{} turn{}</span>', PILL_BAD, chat.not_answered, "" if chat.not_answered == 1 else "s"
        )

    @admin.display(description="State")
    def conversation_state(self, chat: Chat) -> str:
        if chat.blocked_at:
            return format_html('<span style="{}">{}</span>', PILL_BAD, "blocked the bot")
        if chat.paused_at:
            who = "business owner has it" if chat.paused_until else "operator has it"
            return format_html('<span style="color:#92400e;font-weight:600">{}</span>', who)
        return "bot answers"

    # The transcript replaces the plain change form -----------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        def view(function: object) -> object:
            return self.admin_site.admin_view(function)

        return [
            path("<int:pk>/takeover/", view(self.takeover_view), name="bots_chat_takeover"),
            path("<int:pk>/export.json", view(self.export_view), name="bots_chat_export"),
            path("<int:pk>/erase/", view(self.erase_view), name="bots_chat_erase"),
            *super().get_urls(),
        ]

    def _chat_or_404(self, request: HttpRequest, pk: int, role: str = Membership.Role.VIEWER) -> Chat:
        # A chat of another project, a missing chat and one the member may not act on answer alike.
        chat = self.get_queryset(request).select_related("project").filter(pk=pk).first()
        if chat is None or not user_has_role(user=request.user, role=role, project_id=chat.project_id):
            raise Http404("No chat matches the given query.")
        return chat

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        chat = self.get_queryset(request).select_related("project").filter(pk=object_id).first()
        if chat is None or request.method != "GET" or request.GET.get("form"):
            return super().change_view(request, object_id, form_url, extra_context)

        transcript = chat_transcript(chat=chat)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Conversation with {chat}",
            "opts": self.model._meta,
            "original": chat,  # the breadcrumbs: Bots and conversations › Chats › this chat
            "chat": chat,
            "transcript": transcript,
            "problems": sum(1 for item in transcript.items if item.problem),
            "leads": Lead.objects.filter(project=chat.project, chat=chat),
            "business_connection": business_connection_for(
                project_id=chat.project_id, connection_id=chat.business_connection_id
            )
            if chat.business_connection_id
            else None,
            "can_operate": user_has_role(user=request.user, role=Membership.Role.OPERATOR, project_id=chat.project_id),
            "can_own": user_has_role(user=request.user, role=Membership.Role.OWNER, project_id=chat.project_id),
        }
        return TemplateResponse(request, "admin/bots/chat/transcript.html", context)

    def _back(self, chat: Chat) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:bots_chat_change", args=[chat.pk]) + "#takeover")

    def takeover_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        chat = self._chat_or_404(request, pk, Membership.Role.OPERATOR)
        if request.method != "POST":
            return self._back(chat)
        operator = request.user.get_username()
        step = request.POST.get("do")
        try:
            if step == "take_over":
                chat_take_over(chat=chat, operator=operator)
                self.log_change(request, chat, "Took the chat over: the bot is paused")
                self.message_user(request, "You have the chat: the bot stays silent until you hand it back.")
            elif step == "reply":
                turn = chat_operator_reply(chat=chat, text=request.POST.get("text", ""), operator=operator)
                self.log_change(request, chat, f"Operator reply (turn {turn.pk}): {turn.get_status_display()}")
                level = messages.SUCCESS if turn.status == Turn.Status.SENT else messages.ERROR
                detail = f": {turn.error}" if turn.error else ""
                self.message_user(request, f"Reply {turn.get_status_display().lower()}{detail}", level)
            elif step == "hand_back":
                chat_hand_back(chat=chat, operator=operator)
                self.log_change(request, chat, "Handed the chat back to the bot")
                self.message_user(request, "The bot answers this chat again.")
            else:
                self.message_user(request, "Unknown takeover step.", messages.ERROR)
        except TakeoverRefused as exc:
            self.message_user(request, f"Not done: {exc}.", messages.ERROR)
        return self._back(chat)

    def export_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        chat = self._chat_or_404(request, pk)
        data = chat_data_export(project=chat.project, chat_id=chat.pk)
        self.log_change(request, chat, "Exported the chat's data")
        response = HttpResponse(json.dumps(data, ensure_ascii=False, indent=2), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="{chat.project.slug}-chat-{chat.pk}.json"'
        return response

    def erase_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        chat = self._chat_or_404(request, pk, Membership.Role.OWNER)
        if request.method != "POST":
            return self._back(chat)
        user_id = chat.user_id or chat.telegram_chat_id
        try:
            report = telegram_user_erase(project=chat.project, telegram_user_id=user_id,
                                         operator=request.user.get_username())  # fmt: skip
        except ErasureRefused as exc:
            self.message_user(request, f"Nothing erased: {exc}.", messages.ERROR)
            return self._back(chat)
        # The admin log keeps the duty done, without the personal data it removed.
        self.log_change(request, chat, f"Erased the Telegram user's data: {report}")
        self.message_user(request, str(report), messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:bots_chat_change", args=[chat.pk]))

    # Actions on the list -----------------------------------------------------------------------------------

    @admin.action(description="Take over the selected chats (pause the bot)")
    def take_over(self, request: HttpRequest, queryset: QuerySet[Chat]) -> None:
        taken = sum(chat_take_over(chat=chat, operator=request.user.get_username()) for chat in queryset)
        self.message_user(request, f"{taken} chat(s) taken over; the bot stays silent in them.")

    @admin.action(description="Hand the selected chats back to the bot")
    def hand_back(self, request: HttpRequest, queryset: QuerySet[Chat]) -> None:
        resumed = sum(chat_hand_back(chat=chat, operator=request.user.get_username()) for chat in queryset)
        self.message_user(request, f"{resumed} chat(s) handed back to the bot.")

    @admin.action(description="Export the selected chats' data (JSON)")
    def export_json(self, request: HttpRequest, queryset: QuerySet[Chat]) -> HttpResponse:
        data = [chat_data_export(project=chat.project, chat_id=chat.pk) for chat in queryset.select_related("project")]
        response = HttpResponse(json.dumps(data, ensure_ascii=False, indent=2), content_type="application/json")
        response["Content-Disposition"] = 'attachment; filename="chats.json"'
        return response
