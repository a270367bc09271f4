"""Matching fixtures: two matching tenants (English and Russian) on the fake Telegram and LLM servers."""

from pathlib import Path

import pytest

from bots.llm import chain
from bots.llm.embeddings import OFFLINE_MODEL_ID
from matching.selectors import DEFAULT_SIMILARITY_THRESHOLDS
from tenants.models import Project
from tests.infrastructure import WORKER_LEASE_SECONDS, CeleryWorker, worker_environment


@pytest.fixture(autouse=True)
def offline_embeddings(settings):
    """The offline encoder, whatever the environment says: its model id is the one profiles carry."""
    settings.EMBEDDING_MODEL = ""
    settings.EMBEDDING_DIM = 512
    settings.LLM_MODEL_TOOLCALLER = "openai/gpt-test"
    settings.LLM_MODEL_EXTRACT = "openai/gpt-test"
    return settings


@pytest.fixture(autouse=True)
def synthetic_vector_threshold(monkeypatch):
    """The synthetic vectors of these tests (tests/matching/dialogue.py `toward`) put counterparts at cosine
    0.8-0.95 and strangers at 0.5, around the threshold of 0.55 they were written for (USE's); the offline
    default's own threshold is checked with real summaries in test_similarity_threshold.py."""
    monkeypatch.setitem(DEFAULT_SIMILARITY_THRESHOLDS, OFFLINE_MODEL_ID, 0.55)


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch) -> list[float]:
    delays: list[float] = []
    monkeypatch.setattr(chain, "sleep", delays.append)
    return delays


def _matching(project: Project, fake_telegram, username: str) -> Project:
    project.kind = Project.Kind.MATCHING
    project.prompt = "You introduce IT people to each other. Be brief."
    project.start_reply = "Hi! Are you looking for work or for people?"
    project.save()
    fake_telegram.register_bot(project.bot_token, username)
    return project


@pytest.fixture
def alpha(project_a, fake_telegram) -> Project:
    """An English matching project."""
    return _matching(project_a, fake_telegram, "alpha_match_bot")


@pytest.fixture
def beta(project_b, fake_telegram) -> Project:
    """A Russian matching project (project_b's language is ru)."""
    return _matching(project_b, fake_telegram, "beta_match_bot")


ENDPOINT_EMBEDDING_MODEL = "openai/emb-test"


@pytest.fixture
def endpoint_dim() -> int:
    """The embedding size of `endpoint_worker` (tests parametrize it)."""
    return 512


@pytest.fixture
def endpoint_worker(transactional_db, redis_client, redis_url, tmp_path: Path, offline_embeddings, endpoint_dim):
    """A real Celery worker process whose embeddings come from the fake LLM's endpoint at `endpoint_dim`
    dimensions; this process is configured the same way."""
    offline_embeddings.EMBEDDING_MODEL, offline_embeddings.EMBEDDING_DIM = ENDPOINT_EMBEDDING_MODEL, endpoint_dim
    extra = {
        "QDRANT_PATH": str(tmp_path / "qdrant"),
        "GENERATION_LEASE_SECONDS": WORKER_LEASE_SECONDS,
        "EMBEDDING_MODEL": ENDPOINT_EMBEDDING_MODEL,
        "EMBEDDING_DIM": str(endpoint_dim),
    }
    worker = CeleryWorker(env=worker_environment(redis_url=redis_url, extra=extra), log_path=tmp_path / "worker.log")
    yield worker.start()
    worker.stop()
