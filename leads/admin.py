from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html, format_html_join
from unfold.admin import TabularInline

from leads.export import leads_write_csv
from leads.models import CrmWebhook, FollowUp, Lead, LeadDispatch, TopicInbound
from leads.services import lead_resend
from leads.transcript import lead_transcript
from tenants.admin_scoping import ProjectScopedAdmin, ReadOnlyAdminMixin, ScopedInlineMixin


class LeadDispatchInline(ScopedInlineMixin, ReadOnlyAdminMixin, TabularInline):
    model = LeadDispatch
    fields = ["backend", "status", "attempts", "error", "sent_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False


class TopicInboundInline(ScopedInlineMixin, ReadOnlyAdminMixin, TabularInline):
    """What operators wrote in the lead's topic, and what became of it (relayed, refused and why)."""

    model = TopicInbound
    fields = ["created_at", "status", "turn", "note"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "messages in the lead's topic"


@admin.register(Lead)
class LeadAdmin(ReadOnlyAdminMixin, ProjectScopedAdmin):
    list_display = ["__str__", "project", "status", "client_status", "name", "contact", "created_at", "sent_at"]
    list_filter = ["project", "status", "client_status", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["name", "contact", "summary", "notes"]
    date_hierarchy = "created_at"
    readonly_fields = ["project", "chat", "status", "source", "summary", "notes", "client_status", "name", "city",
                       "service", "contact", "shared_contact_display", "files_display", "determined_url",
                       "updates_after_dispatch", "created_at", "sent_at", "refreshed_at", "topic_state",
                       "topic_group_id", "topic_thread_id", "topic_note", "transcript"]  # fmt: skip
    fields = readonly_fields
    inlines = [LeadDispatchInline, TopicInboundInline]
    actions = ["export_csv", "resend_to_crm"]
    read_only_actions = ("export_csv",)

    @admin.display(description="Shared contact")
    def shared_contact_display(self, lead: Lead) -> str:
        contact = lead.shared_contact or {}
        return f"{contact.get('phone_number', '')} {contact.get('first_name', '')}".strip() or "—"

    @admin.display(description="Files")
    def files_display(self, lead: Lead) -> str:
        if not lead.files:
            return "—"
        return format_html_join(", ", "{} {}", ((f["kind"], f.get("file_name", "")) for f in lead.files))

    @admin.display(description="Transcript")
    def transcript(self, lead: Lead) -> str:
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", lead_transcript(lead))

    @admin.action(description="Export selected leads as CSV")
    def export_csv(self, request: HttpRequest, queryset: QuerySet[Lead]) -> HttpResponse:
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="leads.csv"'
        leads_write_csv(leads=queryset.select_related("project"), stream=response)
        return response

    @admin.action(description="Resend to CRM (backends that failed)")
    def resend_to_crm(self, request: HttpRequest, queryset: QuerySet[Lead]) -> None:
        queued, already_sent = [], []
        for lead in queryset.select_related("project"):
            (queued if lead_resend(lead=lead) else already_sent).append(str(lead))
        if queued:
            self.message_user(request, f"Queued for resending (the status updates on each lead): {', '.join(queued)}")
        if already_sent:
            self.message_user(request, f"Already delivered everywhere: {', '.join(already_sent)}", messages.WARNING)


class CrmWebhookForm(forms.ModelForm):
    secret = forms.CharField(widget=forms.PasswordInput(render_value=False), required=False,
                             help_text="Write-only. Leave empty to keep the current secret.")  # fmt: skip

    class Meta:
        model = CrmWebhook
        fields = ["project", "url", "secret", "is_active"]

    def clean_secret(self) -> str:
        secret = self.cleaned_data["secret"]
        if not secret and self.instance.pk:
            return CrmWebhook.objects.get(pk=self.instance.pk).secret
        if not secret:
            raise forms.ValidationError("A new webhook needs a secret.")
        return secret


@admin.register(CrmWebhook)
class CrmWebhookAdmin(ProjectScopedAdmin):
    form = CrmWebhookForm
    list_display = ["url", "project", "is_active", "created_at"]
    list_filter = ["project", "is_active"]


@admin.register(FollowUp)
class FollowUpAdmin(ReadOnlyAdminMixin, ProjectScopedAdmin):
    list_display = ["chat", "project", "step", "fire_at", "last_fired_at"]
    list_filter = ["project"]
