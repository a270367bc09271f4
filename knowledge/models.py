"""The knowledge base of a sales project: sources, crawl jobs, pages and chunks, and BM25 statistics.

Each crawl phase persists its output on the page (raw bytes, text) or its chunks (topic, text,
embedding, upload time), so a re-run does only what is missing. A page keeps what its last fetch
answered (ETag, Last-Modified, content hashes) so that a re-crawl fetches conditionally and re-embeds
only what changed; its chunks carry the page version they belong to, so a changed page's new chunks
replace the old ones in one swap.
"""

import hashlib
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q

from tenants.models import Project

MAX_RAW_BYTES = 15 * 1024 * 1024


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


class Source(models.Model):
    """What staff asked to crawl: a page URL, a sitemap, or an uploaded document, and how often to refresh it."""

    class Kind(models.TextChoices):
        URL = "url", "Page URL"
        SITEMAP = "sitemap", "Sitemap"
        FILE = "file", "Uploaded file"

    class Schedule(models.TextChoices):
        OFF = "off", "Off"
        HOURLY = "hourly", "Hourly"
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="knowledge_sources")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    url = models.URLField(max_length=2000, blank=True)
    file = models.FileField(upload_to="knowledge/%Y/%m/", blank=True)
    title = models.CharField(max_length=300, blank=True)
    schedule = models.CharField(
        max_length=8, choices=Schedule.choices, default=Schedule.OFF, help_text="Re-crawl this source on its own."
    )
    last_refreshed_at = models.DateTimeField(null=True, blank=True, help_text="End of the last crawl that reached it.")
    last_queued_at = models.DateTimeField(null=True, blank=True, help_text="When a crawl of it was last started.")
    failed_runs = models.PositiveIntegerField(default=0, help_text="Crawls in a row in which it failed.")
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.url or self.title or (self.file.name if self.file else f"source {self.pk}")

    @property
    def interval(self) -> timedelta | None:
        return SCHEDULE_INTERVALS.get(self.schedule)


SCHEDULE_INTERVALS = {
    Source.Schedule.HOURLY: timedelta(hours=1),
    Source.Schedule.DAILY: timedelta(days=1),
    Source.Schedule.WEEKLY: timedelta(weeks=1),
}


class CrawlJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        PARTIAL = "partial", "Partly failed"
        FAILED = "failed", "Failed"

    class Phase(models.TextChoices):
        DISCOVER = "discover", "Discovering URLs"
        FETCH = "fetch", "Fetching"
        EXTRACT = "extract", "Extracting text"
        CHUNK = "chunk", "Chunking"
        EMBED = "embed", "Embedding"
        UPLOAD = "upload", "Uploading"
        DONE = "done", "Finished"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="crawl_jobs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    phase = models.CharField(max_length=16, choices=Phase.choices, default=Phase.DISCOVER)
    sources = models.ManyToManyField(Source, blank=True, related_name="jobs")
    recrawl = models.BooleanField(
        default=False, help_text="Fetch and re-embed every page, ignoring what is known to be unchanged."
    )
    scheduled = models.BooleanField(default=False, help_text="Started by a source's schedule.")
    semantic_chunking = models.BooleanField(default=False, help_text="LLM topic boundaries instead of paragraphs.")
    total_pages = models.PositiveIntegerField(default=0)
    pages_done = models.PositiveIntegerField(default=0)
    pages_failed = models.PositiveIntegerField(default=0)
    chunks_uploaded = models.PositiveIntegerField(default=0)
    pages_added = models.PositiveIntegerField(default=0)
    pages_changed = models.PositiveIntegerField(default=0)
    pages_unchanged = models.PositiveIntegerField(default=0)
    pages_removed = models.PositiveIntegerField(default=0)
    not_modified = models.PositiveIntegerField(default=0, help_text="Pages the server answered 304 Not Modified.")
    embedding_calls = models.PositiveIntegerField(default=0)
    chunks_embedded = models.PositiveIntegerField(default=0)
    embedding_tokens = models.PositiveIntegerField(default=0)
    embedding_cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life of the running crawl.")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"crawl #{self.pk} ({self.get_status_display().lower()})"

    FINISHED = (Status.DONE, Status.PARTIAL, Status.FAILED)

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def progress(self) -> str:
        return f"{self.pages_done + self.pages_failed}/{self.total_pages} pages, {self.pages_failed} failed"

    @property
    def duration(self) -> timedelta | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


class Page(models.Model):
    """One URL (or uploaded file) of a project and each phase's persisted output."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        FETCHED = "fetched", "Fetched"
        EXTRACTED = "extracted", "Text extracted"
        CHUNKED = "chunked", "Chunked"
        EMBEDDED = "embedded", "Embedded"
        UPLOADED = "uploaded", "Searchable"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="knowledge_pages")
    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.SET_NULL, related_name="pages")
    job = models.ForeignKey(CrawlJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="pages")
    url = models.CharField(max_length=2000, help_text="The page URL, or file:<name> for an uploaded document.")
    url_hash = models.CharField(max_length=16)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    content_type = models.CharField(max_length=200, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    raw = models.BinaryField(null=True, blank=True, editable=False)
    title = models.CharField(max_length=500, blank=True)
    text = models.TextField(blank=True)
    error = models.TextField(blank=True)
    etag = models.CharField(max_length=500, blank=True, help_text="The ETag of the last full answer.")
    last_modified = models.CharField(max_length=100, blank=True, help_text="Its Last-Modified header.")
    sitemap_lastmod = models.CharField(max_length=100, blank=True, help_text="The sitemap's lastmod when fetched.")
    raw_hash = models.CharField(max_length=64, blank=True)
    content_hash = models.CharField(max_length=64, blank=True, help_text="Hash of the extracted title and text.")
    version = models.PositiveIntegerField(default=0, help_text="Increases each time the page's text changes.")
    gone_count = models.PositiveSmallIntegerField(default=0, help_text="Crawls in a row that answered 404/410.")
    fetched_at = models.DateTimeField(null=True, blank=True)
    extracted_at = models.DateTimeField(null=True, blank=True)
    chunked_at = models.DateTimeField(null=True, blank=True)
    embedded_at = models.DateTimeField(null=True, blank=True)
    uploaded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "url_hash"], name="page_unique_url_per_project")]
        indexes = [models.Index(fields=["project", "status"])]

    def __str__(self) -> str:
        return self.url


class Chunk(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="knowledge_chunks")
    page = models.ForeignKey(Page, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    version = models.PositiveIntegerField(default=0, help_text="The page version this chunk was cut from.")
    topic = models.CharField(max_length=300, blank=True)
    text = models.TextField()
    point_id = models.UUIDField(default=uuid.uuid4, unique=True)
    embedding = models.JSONField(null=True, blank=True, editable=False)
    embedding_model = models.CharField(max_length=200, blank=True)
    uploaded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["page", "index"]
        constraints = [
            models.UniqueConstraint(fields=["page", "version", "index"], name="chunk_unique_index_per_page_version")
        ]
        indexes = [models.Index(fields=["project"], condition=Q(uploaded_at__isnull=True), name="chunk_not_uploaded")]


class PageReport(models.Model):
    """What one crawl did with one page: the lines of the crawl report."""

    class Outcome(models.TextChoices):
        ADDED = "added", "Added"
        CHANGED = "changed", "Changed"
        UNCHANGED = "unchanged", "Unchanged"
        REMOVED = "removed", "Removed"
        FAILED = "failed", "Failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="knowledge_page_reports")
    job = models.ForeignKey(CrawlJob, on_delete=models.CASCADE, related_name="reports")
    page = models.ForeignKey(Page, null=True, blank=True, on_delete=models.SET_NULL, related_name="reports")
    source = models.ForeignKey(Source, null=True, blank=True, on_delete=models.SET_NULL, related_name="reports")
    url = models.CharField(max_length=2000)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    reason = models.TextField(blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    chunks = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["job", "outcome", "url"]
        constraints = [models.UniqueConstraint(fields=["job", "url"], name="page_report_unique_url_per_job")]

    def __str__(self) -> str:
        return f"{self.url}: {self.outcome}"


class BM25Index(models.Model):
    """Per-project BM25 statistics: stable term ids, document frequencies, average length."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="bm25_index")
    language = models.CharField(max_length=2)
    vocabulary = models.JSONField(default=dict)  # term -> sparse index (stable across crawls)
    doc_freq = models.JSONField(default=dict)  # term -> number of chunks containing it
    num_docs = models.PositiveIntegerField(default=0)
    avg_doc_len = models.FloatField(default=0.0)
    updated_at = models.DateTimeField(auto_now=True)


class GoldenQuestion(models.Model):
    """A question the knowledge base must answer, and the page that answers it (the operator's test set).

    The expected page is kept as its URL rather than a link to the `Page` row: a crawl that removes the
    page deletes the row, and the question must survive that to show the loss.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="golden_questions")
    question = models.CharField(max_length=500)
    expected_url = models.CharField(
        max_length=2000, help_text="The page that answers it: its URL, or file:<name> for an uploaded document."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["project", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["project", "question", "expected_url"], name="golden_question_unique")
        ]

    def __str__(self) -> str:
        return self.question


class RetrievalEvaluation(models.Model):
    """One run of a project's golden questions through the bot's search: recall@3, MRR and each question's rank."""

    class Trigger(models.TextChoices):
        CRAWL = "crawl", "After a crawl"
        ON_DEMAND = "on_demand", "On demand"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="retrieval_evaluations")
    job = models.ForeignKey(
        CrawlJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="retrieval_evaluations"
    )
    previous = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    questions = models.PositiveIntegerField(default=0)
    recall_at_3 = models.FloatField()
    mrr = models.FloatField()
    # [{"question_id", "question", "expected_url", "rank" (1-3 or null: not found), "previous_rank"}]
    results = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["project", "-created_at"])]

    def __str__(self) -> str:
        return f"evaluation #{self.pk}: recall@3 {self.recall_at_3:.2f}, MRR {self.mrr:.2f}"
