"""The knowledge base of a sales project: sources, crawl jobs, pages and chunks, and BM25 statistics.

Each crawl phase persists its output on the page (raw bytes, text) or its chunks (topic, text,
embedding, upload time), so a re-run does only what is missing.
"""

import hashlib
import uuid

from django.db import models
from django.db.models import Q

from tenants.models import Project

MAX_RAW_BYTES = 15 * 1024 * 1024


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:16]


class Source(models.Model):
    """What staff asked to crawl: a page URL, a sitemap, or an uploaded document."""

    class Kind(models.TextChoices):
        URL = "url", "Page URL"
        SITEMAP = "sitemap", "Sitemap"
        FILE = "file", "Uploaded file"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="knowledge_sources")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    url = models.URLField(max_length=2000, blank=True)
    file = models.FileField(upload_to="knowledge/%Y/%m/", blank=True)
    title = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.url or (self.file.name if self.file else f"source {self.pk}")


class CrawlJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    class Phase(models.TextChoices):
        DISCOVER = "discover", "Discovering URLs"
        FETCH = "fetch", "Fetching"
        EXTRACT = "extract", "Extracting text"
        CHUNK = "chunk", "Chunking"
        EMBED = "embed", "Embedding"
        UPLOAD = "upload", "Uploading"
        DONE = "done", "Done"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="crawl_jobs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    phase = models.CharField(max_length=16, choices=Phase.choices, default=Phase.DISCOVER)
    sources = models.ManyToManyField(Source, blank=True, related_name="jobs")
    recrawl = models.BooleanField(default=False, help_text="Fetch again even what was fetched before.")
    semantic_chunking = models.BooleanField(default=False, help_text="LLM topic boundaries instead of paragraphs.")
    total_pages = models.PositiveIntegerField(default=0)
    pages_done = models.PositiveIntegerField(default=0)
    pages_failed = models.PositiveIntegerField(default=0)
    chunks_uploaded = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last sign of life of the running crawl.")
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"crawl #{self.pk} ({self.status}, {self.phase})"

    @property
    def progress(self) -> str:
        return f"{self.pages_done + self.pages_failed}/{self.total_pages} pages, {self.pages_failed} failed"


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
    topic = models.CharField(max_length=300, blank=True)
    text = models.TextField()
    point_id = models.UUIDField(default=uuid.uuid4, unique=True)
    embedding = models.JSONField(null=True, blank=True, editable=False)
    embedding_model = models.CharField(max_length=200, blank=True)
    uploaded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["page", "index"]
        constraints = [models.UniqueConstraint(fields=["page", "index"], name="chunk_unique_index_per_page")]
        indexes = [models.Index(fields=["project"], condition=Q(uploaded_at__isnull=True), name="chunk_not_uploaded")]


class BM25Index(models.Model):
    """Per-project BM25 statistics: stable term ids, document frequencies, average length."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="bm25_index")
    language = models.CharField(max_length=2)
    vocabulary = models.JSONField(default=dict)  # term -> sparse index (stable across crawls)
    doc_freq = models.JSONField(default=dict)  # term -> number of chunks containing it
    num_docs = models.PositiveIntegerField(default=0)
    avg_doc_len = models.FloatField(default=0.0)
    updated_at = models.DateTimeField(auto_now=True)
