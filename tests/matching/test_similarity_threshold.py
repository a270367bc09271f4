"""Each offline encoder's default threshold keeps related IT profiles and drops unrelated ones (EN and RU)."""

import itertools

import numpy as np
import pytest

from bots.llm.embeddings import OFFLINE_MODEL_ID, OFFLINE_MODELS, embed_texts
from matching.selectors import DEFAULT_SIMILARITY_THRESHOLDS, FALLBACK_SIMILARITY_THRESHOLD, similarity_threshold

SEEKERS = {
    "python": "Senior Python backend developer, 6 years with Django, PostgreSQL and Celery, looking for a remote "
    "full-time job in a product company.",
    "react": "Фронтенд-разработчик, React, TypeScript, Next.js, ищу проектную работу.",
    "devops": "DevOps engineer, Kubernetes, Terraform and AWS, looking for a full-time role in Berlin.",
    "design": "UI/UX designer with Figma, 5 years in mobile apps, open to remote work.",
    "1c": "Программист 1С, конфигурации Бухгалтерия и УТ, ищу работу.",
}
PROVIDERS = {
    "python": "Ищем бэкенд-разработчика на Python (Django, PostgreSQL) в продуктовую команду, удалённо, полная "
    "занятость.",
    "react": "Startup needs a React/TypeScript frontend developer on contract, remote, 20 hours a week.",
    "devops": "Berlin fintech hiring a DevOps engineer: Kubernetes, Terraform, AWS, full-time on site.",
    "design": "We need a UI/UX designer for our mobile app, Figma, remote contract.",
    "1c": "Требуется программист 1С для доработки конфигурации УТ.",
}


@pytest.fixture
def synthetic_vector_threshold():
    """The real thresholds here, not the synthetic tests' (tests/matching/conftest.py)."""


@pytest.mark.parametrize("model_id", list(OFFLINE_MODELS))
def test_each_offline_model_separates_related_from_unrelated_profiles_across_languages(settings, model_id):
    settings.OFFLINE_EMBEDDING_MODEL = model_id
    threshold = DEFAULT_SIMILARITY_THRESHOLDS[model_id]
    topics = list(SEEKERS)
    seekers = np.asarray(embed_texts([SEEKERS[t] for t in topics], kind="query").vectors)
    providers = np.asarray(embed_texts([PROVIDERS[t] for t in topics], kind="query").vectors)
    similarity = seekers @ providers.T

    related = np.diag(similarity)
    unrelated = [similarity[i, j] for i, j in itertools.permutations(range(len(topics)), 2)]
    assert related.min() >= threshold, dict(zip(topics, related.round(2), strict=True))
    assert max(unrelated) < threshold
    assert [int(row.argmax()) for row in similarity] == list(range(len(topics)))


@pytest.mark.django_db
def test_a_project_threshold_wins_over_the_models_default(alpha):
    assert (
        similarity_threshold(project=alpha, model_id=OFFLINE_MODEL_ID)
        == DEFAULT_SIMILARITY_THRESHOLDS[OFFLINE_MODEL_ID]
    )
    endpoint_model = "openai/text-embedding-3-small"
    assert similarity_threshold(project=alpha, model_id=endpoint_model) == FALLBACK_SIMILARITY_THRESHOLD
    alpha.similarity_threshold = 0.8
    assert similarity_threshold(project=alpha, model_id=OFFLINE_MODEL_ID) == 0.8
