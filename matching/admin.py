from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join
from unfold.admin import TabularInline

from bots.llm.embeddings import embedding_dim, embedding_model_id
from matching.broadcasts import broadcast_create
from matching.forms import BroadcastForm
from matching.matcher import matching_wake
from matching.models import Broadcast, BroadcastDelivery, CvDocument, Match, MatchingState, MatchOutcome, Profile
from matching.qualifier import match_requalify
from matching.reembed import profiles_reembed
from matching.selectors import profiles_embedding_stale
from matching.vectors import EMBEDDING_FAILURES
from tenants.admin_scoping import ProjectScopedAdmin, ReadOnlyAdminMixin, ScopedInlineMixin
from tenants.models import Project


class CvDocumentInline(ScopedInlineMixin, ReadOnlyAdminMixin, TabularInline):
    model = CvDocument
    fields = ["file", "file_name", "mime_type", "size", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False


class OutcomeGivenInline(ScopedInlineMixin, ReadOnlyAdminMixin, TabularInline):
    model = MatchOutcome
    fk_name = "profile"
    verbose_name_plural = "outcomes this user reported"
    fields = ["match", "other", "ask_at", "asked_at", "talked", "worked_out", "reason", "answered_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False


class EmbeddingFailedFilter(admin.SimpleListFilter):
    title = "embedding"
    parameter_name = "embedding_failed"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "Failed"), ("no", "Fine")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Profile]) -> QuerySet[Profile]:
        if self.value() == "yes":
            return queryset.exclude(embedding_error="")
        if self.value() == "no":
            return queryset.filter(embedding_error="")
        return queryset


@admin.register(Profile)
class ProfileAdmin(ProjectScopedAdmin):
    list_display = ["__str__", "project", "role", "state", "location", "profile_updated_at", "embedding_model",
                    "embedding_status"]  # fmt: skip
    list_filter = ["project", "state", "role", "embedding_model", EmbeddingFailedFilter]
    search_fields = ["chat__username", "chat__first_name", "chat__last_name", "summary", "matching_summary",
                     "location"]  # fmt: skip
    list_select_related = ["chat", "project"]
    readonly_fields = ["project", "chat", "state", "embedding_model", "embedded_text", "embedded_at",
                       "embedding_status", "embedding_error", "embedding_failed_at", "embedding_attempts",
                       "embedding_retry_at", "activation_requested_at", "profile_updated_at", "activated_at",
                       "created_at", "updated_at"]  # fmt: skip
    exclude = ["embedding"]
    actions = ["reembed", "reembed_projects", "broadcast"]
    inlines = [CvDocumentInline, OutcomeGivenInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # profiles come from conversations

    @admin.display(description="embedding")
    def embedding_status(self, obj: Profile) -> str:
        """What an operator needs at a glance: fine, failing (with the reason), or given up."""
        if not obj.embedding_error:
            return "ok" if obj.embedding is not None else "–"
        planned = f"retry at {obj.embedding_retry_at:%Y-%m-%d %H:%M}" if obj.embedding_retry_at else "gave up"
        waiting = "; Start matching waits for it" if obj.activation_requested_at else ""
        return f"failed {obj.embedding_attempts}x ({planned}{waiting}): {obj.embedding_error}"

    @admin.action(description="Re-embed the selected profiles")
    def reembed(self, request: HttpRequest, queryset: QuerySet[Profile]) -> None:
        done = 0
        for project in Project.objects.filter(pk__in=queryset.values("project")):
            try:
                done += profiles_reembed(project=project, profiles=queryset.filter(project=project))
            except EMBEDDING_FAILURES as exc:
                self.message_user(request, f"{project}: {exc}", messages.ERROR)
        self.message_user(request, f"{done} profile(s) re-embedded.", messages.SUCCESS)

    @admin.action(description="Re-embed every outdated profile of the selected profiles' projects (worker)")
    def reembed_projects(self, request: HttpRequest, queryset: QuerySet[Profile]) -> None:
        """After an embedding model change: the worker re-embeds in batches; the rest is not matched meanwhile."""
        from matching.tasks import profiles_reembed_task  # the task module imports the services

        for project in Project.objects.filter(pk__in=queryset.values("project")):
            outdated = profiles_embedding_stale(project=project).count()
            transaction.on_commit(lambda pk=project.pk: profiles_reembed_task.delay(pk))
            self.message_user(
                request,
                f"{project}: {outdated} profile(s) to re-embed with {embedding_model_id()} ({embedding_dim()} "
                "dimensions) on the worker; the embedding model column shows the progress.",
            )

    @admin.action(description="Broadcast a message to the selected users")
    def broadcast(self, request: HttpRequest, queryset: QuerySet[Profile]) -> HttpResponse | None:
        sending = "send" in request.POST
        form = BroadcastForm(request.POST if sending else None)
        if sending and form.is_valid():
            total = 0
            for project in Project.objects.filter(pk__in=queryset.values("project")):
                recipients = queryset.filter(project=project).select_related("chat")
                broadcast = broadcast_create(
                    project=project, profiles=recipients, text=form.cleaned_data["text"], created_by=request.user
                )
                total += broadcast.deliveries.count()
                self.message_user(request, f"{project}: broadcast #{broadcast.pk} to {len(recipients)} user(s) queued.")
            self.message_user(request, f"{total} message(s) will be sent; delivery status is under Broadcasts.")
            return None
        per_project = queryset.values("project__slug").annotate(count=Count("pk")).order_by("project__slug")
        context = {
            **self.admin_site.each_context(request),
            "title": "Broadcast a message",
            "form": form,
            "queryset": queryset,
            "count": queryset.count(),
            "blocked": queryset.filter(chat__blocked_at__isnull=False).count(),
            "per_project": [{"project": row["project__slug"], "count": row["count"]} for row in per_project],
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/matching/profile/broadcast.html", context)


class MatchOutcomeInline(ScopedInlineMixin, ReadOnlyAdminMixin, TabularInline):
    model = MatchOutcome
    fields = ["profile", "ask_at", "asked_at", "talked", "worked_out", "reason", "answered_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False


VERDICT_LABELS = [
    ("fitting_skills", "Skills that fit"),
    ("seniority", "Seniority"),
    ("location_and_format", "Location and format"),
    ("rates", "Rates"),
    ("concerns", "What may not fit"),
    ("for_a", "Told to A"),
    ("for_b", "Told to B"),
]


@admin.register(Match)
class MatchAdmin(ReadOnlyAdminMixin, ProjectScopedAdmin):
    list_display = ["__str__", "project", "user_a", "user_b", "status", "round", "similarity", "created_at",
                    "decided_at", "outcome"]  # fmt: skip
    list_filter = ["status", "round", "project"]
    list_select_related = ["project", "user_a__chat", "user_b__chat"]
    search_fields = ["user_a__chat__username", "user_b__chat__username", "reason"]
    readonly_fields = ["verdict_explained"]
    exclude = ["verdict"]
    inlines = [MatchOutcomeInline]
    actions = ["requalify"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Match]:
        return super().get_queryset(request).prefetch_related("outcomes")

    @admin.display(description="qualifier's verdict")
    def verdict_explained(self, obj: Match) -> str:
        verdict = obj.verdict or {}
        rows = []
        for key, label in VERDICT_LABELS:
            value = verdict.get(key)
            if isinstance(value, list):
                value = ", ".join(value)
            if value:
                rows.append((label, value))
        if not rows:
            return "–"
        return format_html("<dl>{}</dl>", format_html_join("", "<dt><b>{}</b></dt><dd>{}</dd>", rows))

    @admin.display(description="outcome")
    def outcome(self, obj: Match) -> str:
        said = [o.summary for o in obj.outcomes.all() if o.answered_at is not None]
        return " / ".join(said) or ("asked" if any(o.asked_at for o in obj.outcomes.all()) else "")

    @admin.action(description="Re-run the qualification of the selected matches")
    def requalify(self, request: HttpRequest, queryset: QuerySet[Match]) -> None:
        chosen = queryset.filter(status__in=[Match.Status.PENDING, Match.Status.DISQUALIFIED])
        queued = sum(match_requalify(match=match) for match in chosen.select_related("project"))
        skipped = queryset.count() - queued
        self.message_user(request, f"{queued} qualification(s) queued.", messages.SUCCESS)
        if skipped:
            self.message_user(
                request,
                f"{skipped} skipped: only pending or disqualified matches whose users have no other open match.",
                messages.WARNING,
            )


@admin.register(MatchingState)
class MatchingStateAdmin(ReadOnlyAdminMixin, ProjectScopedAdmin):
    list_display = ["project", "current_round", "next_run_at", "last_run_at", "last_outcome"]
    actions = ["wake"]

    @admin.action(description="Run the matching loop now")
    def wake(self, request: HttpRequest, queryset: QuerySet[MatchingState]) -> None:
        for state in queryset.select_related("project"):
            matching_wake(project=state.project)
        self.message_user(request, f"{queryset.count()} matching loop(s) woken.")


class BroadcastDeliveryInline(ScopedInlineMixin, ReadOnlyAdminMixin, TabularInline):
    model = BroadcastDelivery
    fields = ["chat", "status", "error", "sent_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Broadcast)
class BroadcastAdmin(ReadOnlyAdminMixin, ProjectScopedAdmin):
    list_display = ["__str__", "project", "created_at", "created_by", "finished_at", "sent", "failed"]
    list_filter = ["project"]
    inlines = [BroadcastDeliveryInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Broadcast]:
        sent = Count("deliveries", filter=Q(deliveries__status=BroadcastDelivery.Status.SENT))
        failed = Count("deliveries", filter=~Q(deliveries__status__in=["sent", "pending", "sending"]))
        return super().get_queryset(request).annotate(sent_count=sent, failed_count=failed)

    @admin.display(description="sent", ordering="sent_count")
    def sent(self, obj: Broadcast) -> int:
        return obj.sent_count

    @admin.display(description="not delivered", ordering="failed_count")
    def failed(self, obj: Broadcast) -> int:
        return obj.failed_count


@admin.register(BroadcastDelivery)
class BroadcastDeliveryAdmin(ReadOnlyAdminMixin, ProjectScopedAdmin):
    list_display = ["broadcast", "project", "chat", "status", "error", "sent_at"]
    list_filter = ["project", "status"]


@admin.register(MatchOutcome)
class MatchOutcomeAdmin(ReadOnlyAdminMixin, ProjectScopedAdmin):
    list_display = ["match", "project", "profile", "other", "ask_at", "asked_at", "talked", "worked_out", "reason",
                    "answered_at"]  # fmt: skip
    list_filter = ["project", "talked", "worked_out", "reason"]
    list_select_related = ["project", "profile__chat", "other__chat", "match"]


@admin.register(CvDocument)
class CvDocumentAdmin(ReadOnlyAdminMixin, ProjectScopedAdmin):
    list_display = ["file_name", "project", "profile", "mime_type", "size", "created_at"]
    list_filter = ["project"]
    list_select_related = ["project", "profile__chat"]
    exclude = ["source_message"]
