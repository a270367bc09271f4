"""Profiles (with their pgvector embedding), the matching loop's state, matches, and broadcasts."""

from django.conf import settings
from django.contrib.postgres.indexes import OpClass
from django.db import models
from django.db.models import Q
from django.db.models.functions import Cast, Greatest, Least
from pgvector.django import HalfVectorField, HnswIndex, VectorField

from bots.models import Chat, Message, Turn
from tenants.models import Project

# The embedding column is an untyped `vector`: each row holds its model's size (embedding_dim). HNSW needs
# a fixed size, so each common size has a partial expression index over `embedding::vector(N)` for the rows
# of that size (pgvector's documented pattern); HNSW on `vector` stops at 2000 dimensions, so larger models
# are indexed as `halfvec(N)`. Vectors of any other size (up to pgvector's 16000) are stored and matched
# too, by an exact scan. Queries cast the same way as the index (profile_embedding_cast), or it is not used.
INDEXED_VECTOR_DIMS = (256, 384, 512, 768, 1024, 1536)
INDEXED_HALFVEC_DIMS = (2048, 3072)  # halfvec HNSW stops at 4000
MAX_PROFILE_VECTOR_DIM = 16_000


def profile_embedding_cast(dim: int) -> Cast:
    """`embedding` as the typed expression of its size's index (halfvec above HNSW's vector limit)."""
    field = HalfVectorField(dimensions=dim) if dim in INDEXED_HALFVEC_DIMS else VectorField(dimensions=dim)
    return Cast("embedding", field)


def _profile_embedding_indexes() -> list[HnswIndex]:
    return [
        HnswIndex(
            OpClass(
                profile_embedding_cast(dim),
                name="halfvec_cosine_ops" if dim in INDEXED_HALFVEC_DIMS else "vector_cosine_ops",
            ),
            name=f"profile_embedding_hnsw_{dim}",
            condition=Q(embedding_dim=dim),
            m=16,
            ef_construction=64,
        )
        for dim in (*INDEXED_VECTOR_DIMS, *INDEXED_HALFVEC_DIMS)
    ]


class Profile(models.Model):
    """What the matchmaker knows about one user of one matching project."""

    class Role(models.TextChoices):
        SEEKER = "seeker", "Seeker (looks for work)"
        PROVIDER = "provider", "Provider (offers work)"
        BOTH = "both", "Both"

    class State(models.TextChoices):
        ONBOARDING = "onboarding", "Onboarding"
        READY = "ready", "Ready (waiting for Start matching)"
        ACTIVE = "active", "Active (in matching)"
        UPDATED = "updated", "Updated (waiting for re-confirmation)"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="matching_profiles")
    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="matching_profiles")
    role = models.CharField(max_length=16, choices=Role.choices, blank=True)
    summary = models.TextField(blank=True, help_text="Who the person is and what they want, shown on their card.")
    location = models.CharField(max_length=200, blank=True)
    work_format = models.CharField(max_length=200, blank=True, help_text="Remote, office, hybrid; full-time, ...")
    rates = models.CharField(max_length=200, blank=True)
    availability = models.CharField(max_length=200, blank=True)
    private_observations = models.TextField(
        blank=True, help_text="The model's private notes; used by the qualifier, never shown to other users."
    )
    matching_summary = models.TextField(blank=True, help_text="Embedded for the search and shown to counterparts.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.ONBOARDING)
    embedding = VectorField(null=True, blank=True)  # untyped: the model's own size, see INDEXED_VECTOR_DIMS
    embedding_model = models.CharField(max_length=200, blank=True, help_text="Vectors of other models never meet.")
    embedding_dim = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Size of the vector; only vectors of the same model and size are compared."
    )
    embedded_text = models.TextField(blank=True, help_text="The matching_summary the embedding was computed from.")
    embedded_at = models.DateTimeField(null=True, blank=True)
    # The last embedding failure, kept for operators until an attempt succeeds; retries are rows swept by beat.
    embedding_error = models.TextField(blank=True, help_text="Why the last embedding attempt failed.")
    embedding_failed_at = models.DateTimeField(null=True, blank=True)
    embedding_attempts = models.PositiveSmallIntegerField(default=0, help_text="Failed embedding attempts in a row.")
    embedding_retry_at = models.DateTimeField(
        null=True, blank=True, help_text="When the next embedding attempt runs; empty: none planned (gave up)."
    )
    activation_requested_at = models.DateTimeField(
        null=True, blank=True, help_text="Start matching was pressed but embedding failed: joins once embedded."
    )
    profile_updated_at = models.DateTimeField(
        null=True, blank=True, help_text="Last change of the shared profile: round-robin order and re-pairing."
    )
    activated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    SHARED_FIELDS = ("role", "summary", "location", "work_format", "rates", "availability", "matching_summary")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["project", "chat"], name="matching_profile_unique_per_chat"),
            # The size on the row is the vector's size, so the partial indexes and the filters agree.
            models.CheckConstraint(
                condition=Q(embedding__isnull=True, embedding_dim__isnull=True)
                | Q(embedding_dim=models.Func("embedding", function="vector_dims", output_field=models.IntegerField())),
                name="profile_embedding_dim_matches",
            ),
        ]
        indexes = [
            *_profile_embedding_indexes(),
            # The round-robin pick: active profiles of a project, oldest change first.
            models.Index(fields=["project", "state", "profile_updated_at", "id"], name="profile_round_robin"),
            models.Index(
                fields=["embedding_retry_at"], condition=Q(embedding_retry_at__isnull=False), name="profile_embed_retry"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.chat} [{self.role or '?'}]"

    @property
    def has_data(self) -> bool:
        return self.state != self.State.ONBOARDING or any(
            getattr(self, name) for name in (*self.SHARED_FIELDS, "private_observations")
        )


class MatchingState(models.Model):
    """The matching loop of one project: its round and when it runs next (the loop lives in the database)."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="matching_state")
    current_round = models.PositiveIntegerField(default=1)
    next_run_at = models.DateTimeField(null=True, blank=True, help_text="Empty or past: the loop has work to try.")
    last_run_at = models.DateTimeField(null=True, blank=True)
    last_outcome = models.CharField(max_length=32, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.project}: round {self.current_round}"


class Match(models.Model):
    """One attempt of the loop: a candidate pair (user_b set) or an unmatched try (user_b empty)."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending qualification"
        QUALIFIED = "qualified", "Qualified"
        DISQUALIFIED = "disqualified", "Disqualified"
        A_ACCEPTED = "a_accepted", "A accepted"
        B_ACCEPTED = "b_accepted", "B accepted"
        CONNECTED = "connected", "Connected"
        REJECTED = "rejected", "Rejected"
        UNMATCHED = "unmatched", "Unmatched attempt"

    # Open introductions: a user with the project's limit of these is neither picked nor offered.
    OPEN = (Status.PENDING, Status.QUALIFIED, Status.A_ACCEPTED, Status.B_ACCEPTED)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="matches")
    user_a = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="matches_as_a")
    user_b = models.ForeignKey(Profile, null=True, blank=True, on_delete=models.CASCADE, related_name="matches_as_b")
    round = models.PositiveIntegerField()
    similarity = models.FloatField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices)
    reason = models.TextField(blank=True, help_text="The qualifier's explanation (operators only).")
    verdict = models.JSONField(
        null=True, blank=True, help_text="The qualifier's full structured verdict (what fits, what may not)."
    )
    introduced_at = models.DateTimeField(null=True, blank=True)
    a_contact_sent_at = models.DateTimeField(null=True, blank=True)
    b_contact_sent_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True, help_text="When the qualifier decided.")
    first_accepted_at = models.DateTimeField(null=True, blank=True, help_text="When the first of the two accepted.")
    closed_at = models.DateTimeField(null=True, blank=True, help_text="When it was connected or rejected.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "matches"
        constraints = [
            models.CheckConstraint(
                condition=Q(status="unmatched", user_b__isnull=True)
                | (~Q(status="unmatched") & Q(user_b__isnull=False)),
                name="match_user_b_iff_matched",
            ),
            models.CheckConstraint(condition=~Q(user_a=models.F("user_b")), name="match_not_with_oneself"),
            # Each user is tried once per round: the loop's fairness, enforced by the database too.
            models.UniqueConstraint(fields=["user_a", "round"], name="match_one_try_per_user_per_round"),
            models.UniqueConstraint(
                Least("user_a", "user_b"),
                Greatest("user_a", "user_b"),
                condition=Q(status__in=["pending", "qualified", "a_accepted", "b_accepted"]),
                name="match_one_open_per_pair",
            ),
        ]
        indexes = [
            models.Index(fields=["project", "round"], name="match_round"),
            models.Index(fields=["user_a", "status"], name="match_user_a_status"),
            models.Index(fields=["user_b", "status"], name="match_user_b_status"),
            models.Index(fields=["project", "status"], name="match_project_status"),
        ]

    def __str__(self) -> str:
        return f"match #{self.pk} ({self.status})"


class MatchOutcome(models.Model):
    """What one side of a connected match said afterwards: did they talk, did it work out, and why not.

    The row is also the timer of the question (ask_at, swept by beat). It outlives its match: a pair with a
    "did not work out" answer is never introduced again, whatever happens to the match row.
    """

    class Reason(models.TextChoices):
        SKILLS = "skills", "Skills did not fit"
        SENIORITY = "seniority", "Seniority did not fit"
        RATES = "rates", "Rates or budget"
        LOCATION_FORMAT = "location_format", "Location or work format"
        NO_REPLY = "no_reply", "No reply"
        OTHER = "other", "Other"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="match_outcomes")
    match = models.ForeignKey(Match, null=True, blank=True, on_delete=models.SET_NULL, related_name="outcomes")
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="outcomes_given")
    other = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="outcomes_received")
    ask_at = models.DateTimeField(help_text="When the question goes out (the beat sweep sends it).")
    asked_at = models.DateTimeField(null=True, blank=True)
    talked = models.BooleanField(null=True, blank=True)
    worked_out = models.BooleanField(null=True, blank=True)
    reason = models.CharField(max_length=32, choices=Reason.choices, blank=True)
    reason_given = models.BooleanField(default=False, help_text="The reason question was answered (or skipped).")
    answered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["match", "profile"], name="match_outcome_once_per_side"),
        ]
        indexes = [
            models.Index(fields=["ask_at"], condition=Q(asked_at__isnull=True), name="match_outcome_due"),
            models.Index(fields=["profile", "other"], name="match_outcome_pair"),
        ]

    def __str__(self) -> str:
        return f"outcome of match #{self.match_id} by {self.profile_id}"

    @property
    def summary(self) -> str:
        if self.talked is None and self.worked_out is None:
            return "asked, no answer yet" if self.asked_at else "not asked yet"
        parts = ["talked" if self.talked else "did not talk" if self.talked is False else "talk unknown"]
        if self.worked_out is not None:
            parts.append("worked out" if self.worked_out else "did not work out")
        if self.reason:
            parts.append(f"reason: {self.get_reason_display()}")
        return ", ".join(parts)


class CvDocument(models.Model):
    """A CV the user sent to the bot: the file as received and the text extracted from it."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="matching_cvs")
    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="cvs")
    source_message = models.OneToOneField(
        Message, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", help_text="The user's message."
    )
    file = models.FileField(upload_to="matching/cv/%Y/%m/")
    file_name = models.CharField(max_length=255, blank=True)
    mime_type = models.CharField(max_length=100, blank=True)
    size = models.PositiveIntegerField(default=0)
    text = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "CV"

    def __str__(self) -> str:
        return self.file_name or f"CV #{self.pk}"


class Broadcast(models.Model):
    """An operator's message to selected users of one project, sent through the bot at Telegram's pace."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="matching_broadcasts")
    text = models.TextField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"broadcast #{self.pk} ({self.project})"


class BroadcastDelivery(models.Model):
    """One recipient of a broadcast and what happened to their message."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        BLOCKED = "blocked", "Blocked the bot"
        UNKNOWN = "unknown", "Outcome unknown"

    broadcast = models.ForeignKey(Broadcast, on_delete=models.CASCADE, related_name="deliveries")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="matching_broadcast_deliveries")
    profile = models.ForeignKey(Profile, null=True, on_delete=models.SET_NULL, related_name="broadcast_deliveries")
    chat = models.ForeignKey(Chat, on_delete=models.CASCADE, related_name="broadcast_deliveries")
    turn = models.ForeignKey(Turn, null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "broadcast deliveries"
        constraints = [
            models.UniqueConstraint(fields=["broadcast", "chat"], name="broadcast_delivery_once_per_chat"),
        ]
