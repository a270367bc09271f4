"""Leads delivered to the business's CRM, their per-backend dispatches, and follow-up timers."""

from django.db import models

from bots.models import Chat, Message, TelegramUpdate, Turn
from tenants.encryption import EncryptedTextField
from tenants.models import Project


class TopicState(models.TextChoices):
    NONE = "", "No topic (not a forum)"
    CREATING = "creating", "Topic requested (outcome not yet known)"
    OPEN = "open", "Topic open"
    GENERAL = "general", "In the general thread (see the note)"


class Lead(models.Model):
    """A finished conversation: persisted as finished before any CRM send, marked sent after."""

    class Status(models.TextChoices):
        FINISHED = "finished", "Finished, not yet delivered"
        SENT = "sent", "Delivered"
        FAILED = "failed", "Delivery failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="leads")
    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="leads")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.FINISHED)
    summary = models.TextField()
    notes = models.TextField(blank=True, help_text="The agent's scratchpad at dispatch time.")
    client_status = models.CharField(max_length=32, blank=True)
    name = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=200, blank=True)
    service = models.CharField(max_length=300, blank=True)
    contact = models.CharField(max_length=300, blank=True)
    shared_contact = models.JSONField(null=True, blank=True)
    files = models.JSONField(default=list, blank=True)
    determined_url = models.CharField(max_length=2000, blank=True)
    source = models.CharField(max_length=16, default="agent", help_text="agent (send_lead) or timer (safety net).")
    updates_after_dispatch = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    # The lead's own topic when the lead group is a forum (leads/topics.py).
    topic_state = models.CharField(max_length=16, choices=TopicState.choices, default=TopicState.NONE, blank=True)
    topic_group_id = models.BigIntegerField(null=True, blank=True, help_text="The forum group of the topic.")
    topic_thread_id = models.BigIntegerField(null=True, blank=True, help_text="The topic's message_thread_id.")
    topic_requested_at = models.DateTimeField(null=True, blank=True)
    topic_note = models.CharField(max_length=500, blank=True, help_text="Why the lead has no topic, if so.")

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["project", "status", "created_at"]),
            models.Index(
                fields=["project", "topic_group_id", "topic_thread_id"], name="lead_topic",
                condition=models.Q(topic_thread_id__isnull=False),
            ),
        ]  # fmt: skip

    def __str__(self) -> str:
        return f"Lead #{self.pk} ({self.project.slug})"


class LeadDispatch(models.Model):
    """One lead at one CRM backend: its status and the references needed to update it in place."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, related_name="dispatches")
    backend = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    refs = models.JSONField(default=dict, blank=True, help_text="Message ids of the posted lead, per backend.")
    error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["lead", "backend"], name="dispatch_unique_lead_backend")]
        verbose_name = "lead dispatch"
        verbose_name_plural = "lead dispatches"

    def __str__(self) -> str:
        return f"Lead #{self.lead_id} → {self.backend}"


class CrmWebhook(models.Model):
    """A generic HTTP CRM: each lead is POSTed as JSON, signed with HMAC-SHA256 of the body."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="crm_webhooks")
    url = models.URLField(max_length=2000)
    secret = EncryptedTextField(help_text="Signs the body: X-Switchboard-Signature: sha256=<hex>.")
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "CRM webhook"

    def __str__(self) -> str:
        return self.url


class FollowUp(models.Model):
    """The follow-up timer of one chat: which step fires next, and when (a database row, swept by beat)."""

    chat = models.OneToOneField(Chat, on_delete=models.CASCADE, related_name="follow_up")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="follow_ups")
    step = models.PositiveSmallIntegerField(default=0, help_text="Index into the project's follow-up steps.")
    fire_at = models.DateTimeField(null=True, blank=True, help_text="Empty: no timer running.")
    last_fired_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["fire_at"], condition=models.Q(fire_at__isnull=False), name="followup_due")]
        verbose_name = "follow-up timer"

    def __str__(self) -> str:
        return f"Follow-up of chat #{self.chat_id} (step {self.step + 1})"


class TopicInbound(models.Model):
    """A message written in a lead group's forum topic (an operator, or a topic being created), to apply once."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RELAYED = "relayed", "Relayed to the customer"
        RESUMED = "resumed", "Handed back to the bot"
        ADOPTED = "adopted", "Topic recognised"
        IGNORED = "ignored", "Ignored"
        REFUSED = "refused", "Refused"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="topic_inbound")
    update = models.OneToOneField(TelegramUpdate, on_delete=models.CASCADE, related_name="topic_inbound")
    lead = models.ForeignKey("Lead", on_delete=models.SET_NULL, null=True, blank=True, related_name="topic_inbound")
    turn = models.OneToOneField(
        Turn, on_delete=models.SET_NULL, null=True, blank=True, related_name="topic_inbound",
        help_text="The operator reply this message became.",
    )  # fmt: skip
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "created_at"])]
        verbose_name = "topic message"

    def __str__(self) -> str:
        return f"Topic message of update #{self.update_id} ({self.status})"


class TopicMirror(models.Model):
    """One customer message or console reply posted into the lead's topic: claimed before it is sent, once."""

    class Status(models.TextChoices):
        SENDING = "sending", "Sending (a crash here is never resent)"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    lead = models.ForeignKey("Lead", on_delete=models.CASCADE, related_name="topic_mirrors")
    message = models.OneToOneField(
        Message, on_delete=models.CASCADE, null=True, blank=True, related_name="topic_mirror"
    )
    turn = models.OneToOneField(Turn, on_delete=models.CASCADE, null=True, blank=True, related_name="topic_mirror")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SENDING)
    group_message_id = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(message__isnull=False) ^ models.Q(turn__isnull=False), name="mirror_one_source"
            )
        ]
        verbose_name = "topic mirror"

    def __str__(self) -> str:
        return f"Mirror into the topic of lead #{self.lead_id} ({self.status})"
