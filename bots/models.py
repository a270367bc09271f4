"""Conversations, their history, the generation queue and the record of every LLM call."""

from decimal import Decimal

from django.db import models
from django.db.models import Q
from django.utils import timezone

from tenants.models import Project


class Chat(models.Model):
    """One Telegram chat with one project's bot; `state` holds the kind's conversation state."""

    class Channel(models.TextChoices):
        TELEGRAM = "telegram", "Telegram"
        TERMINAL = "terminal", "Terminal (manage.py chat)"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="chats")
    telegram_chat_id = models.BigIntegerField()
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.TELEGRAM)
    chat_type = models.CharField(max_length=16, default="private")
    user_id = models.BigIntegerField(null=True, blank=True)
    username = models.CharField(max_length=64, blank=True)
    first_name = models.CharField(max_length=128, blank=True)
    last_name = models.CharField(max_length=128, blank=True)
    language_code = models.CharField(max_length=16, blank=True)
    state = models.JSONField(default=dict, blank=True)
    debug = models.BooleanField(default=False)
    blocked_at = models.DateTimeField(null=True, blank=True, help_text="The user blocked the bot.")
    paused_at = models.DateTimeField(null=True, blank=True, help_text="An operator took the chat over.")
    # Telegram Business: the chat is a customer's chat with the business owner's own account, reached through
    # this connection (empty: the customer's chat with the bot itself). Part of the chat's key.
    business_connection_id = models.CharField(max_length=128, blank=True, default="")
    paused_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="The pause ends by itself then (the business owner wrote); empty: until handed back.",
    )
    last_user_message_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["project", "telegram_chat_id", "business_connection_id"], name="chat_unique_per_project"
            ),
        ]
        indexes = [
            models.Index(fields=["project", "-last_user_message_at"]),
            models.Index(fields=["paused_until"], condition=Q(paused_until__isnull=False), name="chat_pause_ends"),
        ]

    def __str__(self) -> str:
        name = f"@{self.username}" if self.username else (self.first_name or str(self.telegram_chat_id))
        return f"{name} ({self.project.slug})"


class BusinessConnection(models.Model):
    """A Telegram Business account connected to the project's bot, as the last `business_connection` said."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="business_connections")
    connection_id = models.CharField(max_length=128)
    user_id = models.BigIntegerField(null=True, blank=True, help_text="The business owner's Telegram user id.")
    user_chat_id = models.BigIntegerField(null=True, blank=True, help_text="The owner's private chat with the bot.")
    username = models.CharField(max_length=64, blank=True)
    first_name = models.CharField(max_length=128, blank=True)
    last_name = models.CharField(max_length=128, blank=True)
    rights = models.JSONField(default=dict, blank=True, help_text="The rights the owner granted (can_reply, ...).")
    can_reply = models.BooleanField(default=False, help_text="The bot may send messages in the owner's chats.")
    is_enabled = models.BooleanField(default=False)
    connected_at = models.DateTimeField(null=True, blank=True, help_text="When the owner connected the bot.")
    last_update_id = models.BigIntegerField(default=0, help_text="The update this row is from; older ones are ignored.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "connection_id"], name="business_connection_unique"),
        ]

    def __str__(self) -> str:
        owner = f"@{self.username}" if self.username else (self.first_name or str(self.user_id or "?"))
        return f"Business account {owner} ({self.project.slug})"

    @property
    def may_reply(self) -> bool:
        return self.is_enabled and self.can_reply


class TelegramUpdate(models.Model):
    """Every accepted webhook update, raw; the unique key makes redelivery harmless."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="telegram_updates")
    update_id = models.BigIntegerField()
    payload = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)
    # Button presses are applied from the update itself; until then the sweep re-enqueues them (a lost task,
    # a broker restart). Other updates become Message rows at once and are marked processed when stored.
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "update_id"], name="update_unique_per_project"),
        ]
        indexes = [
            models.Index(
                fields=["received_at"], condition=models.Q(processed_at__isnull=True), name="update_unprocessed"
            )
        ]


class QuarantinedUpdate(models.Model):
    """A webhook body that passed the secret check but that the code could not store: kept byte for byte for
    operators, answered 200 so that Telegram stops redelivering it; a redelivery only counts up."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="quarantined_updates")
    update_id = models.BigIntegerField(null=True, blank=True, help_text="When the body had a readable one.")
    body_sha256 = models.CharField(max_length=64)
    # bytea: holds what jsonb and text refuse (NUL characters, invalid UTF-8), so nothing sent is lost.
    body = models.BinaryField()
    error = models.TextField(help_text="What failed, secrets redacted.")
    deliveries = models.PositiveIntegerField(default=1)
    first_received_at = models.DateTimeField(default=timezone.now)
    last_received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "body_sha256"], name="quarantined_update_unique_body"),
        ]

    def __str__(self) -> str:
        return f"quarantined update {self.update_id or '?'} ({self.project_id})"


class Turn(models.Model):
    """One exchange: the user's combined message(s) or a synthetic trigger, and the bot's reply.

    The reply is persisted before it is sent, and marked while it is being sent, so that a crash
    never sends one turn's reply twice (a turn caught mid-send is reported, not resent).
    """

    class Trigger(models.TextChoices):
        USER = "user", "User message"
        TIMER = "timer", "Follow-up timer"
        OPERATOR = "operator", "Operator"
        OWNER = "owner", "Business owner (in Telegram)"
        SYSTEM = "system", "System"

    class Status(models.TextChoices):
        COMPOSING = "composing", "Composing"
        REPLY_READY = "reply_ready", "Reply ready"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        SILENT = "silent", "No reply"
        SEND_UNKNOWN = "send_unknown", "Send outcome unknown"
        FAILED = "failed", "Failed"

    class Outcome(models.TextChoices):
        """How the reply was made: what the transcript marks and the dashboard counts."""

        ANSWERED = "answered", "Answered by the model"
        FALLBACK = "fallback", "Answered by a fallback model"
        SAFE_REPLY = "safe_reply", "Safe reply: the tool loop ran out of round-trips"
        CANNED = "canned", "Answered without the model"
        LLM_FAILED = "llm_failed", "Failed: no model answered (the user got an apology)"
        PAUSED = "paused", "Paused: weekly cap reached (the user got the unavailable text)"

    # Outcomes where the user got something other than the model's own answer.
    NOT_ANSWERED = (Outcome.SAFE_REPLY, Outcome.LLM_FAILED, Outcome.PAUSED)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="turns")
    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="turns")
    generation = models.ForeignKey("Generation", null=True, blank=True, on_delete=models.SET_NULL)
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.USER)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPOSING)
    user_text = models.TextField(blank=True)
    reply = models.TextField(blank=True)
    blocks = models.JSONField(default=list, blank=True, help_text="The model's tool-use and tool-result blocks.")
    reply_markup = models.JSONField(null=True, blank=True)
    sent_message_ids = models.JSONField(default=list, blank=True)
    preview_message_id = models.BigIntegerField(
        null=True, blank=True, help_text="The edited preview of the answer as it streamed (deleted before the reply)."
    )
    model = models.CharField(max_length=200, blank=True)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    error = models.TextField(blank=True)
    # Empty for operator and platform turns, and while composing.
    outcome = models.CharField(max_length=16, choices=Outcome.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["chat", "created_at"])]

    def __str__(self) -> str:
        return f"Turn #{self.pk} ({self.get_trigger_display().lower()}, {self.get_status_display().lower()})"


class Message(models.Model):
    """A user's message (text, caption, files, contact); unanswered while `turn` is empty."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="messages")
    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="messages")
    turn = models.ForeignKey(Turn, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages")
    telegram_message_id = models.BigIntegerField(null=True, blank=True)
    text = models.TextField(blank=True)
    command = models.CharField(max_length=64, blank=True, help_text="/start, /debug, ... when it was a command.")
    command_args = models.CharField(max_length=256, blank=True)
    files = models.JSONField(default=list, blank=True)
    contact = models.JSONField(null=True, blank=True)
    transcription = models.JSONField(
        null=True, blank=True, help_text="A voice message's transcription: status, text, duration, model, error."
    )
    needs_reply = models.BooleanField(default=True, help_text="False for messages answered without the model.")
    processed_at = models.DateTimeField(null=True, blank=True, help_text="Commands and acknowledgements done.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["chat", "created_at"]),
            models.Index(fields=["created_at"], condition=Q(turn__isnull=True, needs_reply=True), name="unanswered"),
            models.Index(fields=["created_at"], condition=Q(processed_at__isnull=True), name="unprocessed"),
        ]

    @property
    def transcription_pending(self) -> bool:
        """A voice message waiting for the worker to transcribe it: no turn may take it yet."""
        return (self.transcription or {}).get("status") == "pending"


class Generation(models.Model):
    """One LLM job in the budget-spaced queue."""

    class Kind(models.TextChoices):
        CHAT_TURN = "chat_turn", "Chat turn"
        TIMER_TURN = "timer_turn", "Follow-up turn"
        QUALIFICATION = "qualification", "Match qualification"
        SUMMARY = "summary", "Lead summary"
        EXTRACTION = "extraction", "Extraction"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    ACTIVE = (Status.PENDING, Status.RUNNING)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="generations")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    chat = models.ForeignKey(Chat, null=True, blank=True, on_delete=models.CASCADE, related_name="generations")
    target_id = models.BigIntegerField(null=True, blank=True, help_text="The kind's object, e.g. a match id.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    scheduled_for = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    tokens_cached = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # At most one queued or running turn per chat: one worker at a time per chat.
            models.UniqueConstraint(
                fields=["chat"],
                condition=Q(status__in=["pending", "running"], kind__in=["chat_turn", "timer_turn"]),
                name="one_active_turn_generation_per_chat",
            ),
        ]
        indexes = [
            models.Index(fields=["scheduled_for"], condition=Q(status="pending"), name="generation_due"),
            models.Index(fields=["project", "-scheduled_for"]),
            models.Index(fields=["project", "finished_at"]),
        ]

    def __str__(self) -> str:
        return f"Generation #{self.pk} ({self.get_kind_display().lower()}, {self.get_status_display().lower()})"


class ModelPrice(models.Model):
    """USD per million tokens (or per minute of audio) for one `provider/model`; operators edit these in the admin."""

    model = models.CharField(max_length=200, unique=True, help_text="provider/model, as in the model slots.")
    input_per_million = models.DecimalField(max_digits=10, decimal_places=4)
    cached_input_per_million = models.DecimalField(max_digits=10, decimal_places=4, default=Decimal(0))
    output_per_million = models.DecimalField(max_digits=10, decimal_places=4)
    audio_per_minute = models.DecimalField(
        max_digits=10, decimal_places=4, default=Decimal(0), help_text="Transcription models: USD per minute of audio."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]
        verbose_name = "model price"

    def __str__(self) -> str:
        return self.model


class LLMCall(models.Model):
    """One request to a provider: who asked, for what, how long it took, what it cost."""

    class Status(models.TextChoices):
        OK = "ok", "OK"
        ERROR = "error", "Error"

    project = models.ForeignKey(Project, null=True, blank=True, on_delete=models.CASCADE, related_name="llm_calls")
    generation = models.ForeignKey(Generation, null=True, blank=True, on_delete=models.SET_NULL)
    purpose = models.CharField(max_length=32)
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=200)
    method = models.CharField(max_length=32, default="tools")
    status = models.CharField(max_length=8, choices=Status.choices)
    attempt = models.PositiveSmallIntegerField(default=1)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    tokens_cached = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["project", "created_at"])]
        verbose_name = "LLM call"

    def __str__(self) -> str:
        return f"LLM call #{self.pk} ({self.model}, {self.get_status_display()})"


class TurnTrace(models.Model):
    """What happened inside one agent turn: each model call and each tool call, with timings (TURN_TRACES)."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="turn_traces")
    turn = models.OneToOneField(Turn, on_delete=models.CASCADE, related_name="trace")
    generation = models.ForeignKey(Generation, null=True, blank=True, on_delete=models.SET_NULL)
    purpose = models.CharField(max_length=32)
    model = models.CharField(max_length=200, blank=True)
    round_trips = models.PositiveSmallIntegerField(default=0)
    tools_called = models.JSONField(default=list, blank=True)
    steps = models.JSONField(default=list, blank=True, help_text="Model calls and tool calls, in order.")
    duration_ms = models.PositiveIntegerField(default=0)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=Decimal(0))
    overflowed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["project", "-created_at"])]
        verbose_name = "turn trace"

    def __str__(self) -> str:
        return f"Trace of turn #{self.turn_id}"
