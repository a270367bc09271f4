"""Profile vectors of any size: each row keeps its model's size, the candidate query uses the partial HNSW
index of that size, vectors of another model or size are never compared, and the migration sizes old rows."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from bots.models import Chat
from matching.matcher import Outcome, matching_run, matching_wake
from matching.models import Match, Profile
from matching.selectors import profile_counterparts
from tests.matching.dialogue import active_profile, toward

SEEKER, PROVIDER = Profile.Role.SEEKER, Profile.Role.PROVIDER
MODEL = "openai/emb-test"


@pytest.fixture
def endpoint_embeddings(offline_embeddings):
    offline_embeddings.EMBEDDING_MODEL = MODEL
    return offline_embeddings


@pytest.mark.django_db
@pytest.mark.parametrize("dim", [256, 1536, 3072])
def test_the_candidate_query_walks_the_index_of_its_size(alpha, endpoint_embeddings, dim):
    seeker = active_profile(alpha, 1, SEEKER, toward(0, 1.0, 1, dim), model=MODEL)
    active_profile(alpha, 2, PROVIDER, toward(0, 0.9, 2, dim), model=MODEL)
    active_profile(alpha, 3, PROVIDER, toward(0, 0.9, 3, 512), model=MODEL)  # another size: another index

    with connection.cursor() as cursor:  # a handful of rows: make the planner show that the index fits
        cursor.execute("SET LOCAL enable_seqscan = off")
    plan = profile_counterparts(profile=seeker, threshold=0.5).explain()

    assert f"profile_embedding_hnsw_{dim}" in plan, plan
    assert [p.chat.telegram_chat_id for p in profile_counterparts(profile=seeker, threshold=0.5)] == [2]


@pytest.mark.django_db
def test_vectors_of_another_model_or_size_are_never_compared(alpha, beta, endpoint_embeddings):
    endpoint_embeddings.EMBEDDING_DIM = 384
    seeker = active_profile(alpha, 1, SEEKER, toward(0, 1.0, 1, 384), model=MODEL)
    # Identical directions, but from another model, or the same model at another (Matryoshka) size.
    active_profile(alpha, 2, PROVIDER, toward(0, 1.0, 1, 384), model="openai/other-embedder")
    active_profile(alpha, 3, PROVIDER, toward(0, 1.0, 1, 256), model=MODEL)
    active_profile(beta, 4, PROVIDER, toward(0, 1.0, 1, 384), model=MODEL)  # another tenant
    seeker.refresh_from_db()
    assert (seeker.embedding_dim, len(seeker.embedding)) == (384, 384)

    run = matching_run(project=alpha)

    assert [i.outcome for i in run.iterations][:1] == [Outcome.UNMATCHED]
    assert not Match.objects.filter(user_b__isnull=False).exists()
    assert not profile_counterparts(profile=seeker, threshold=0.0).exists()

    # The profiles of the 256-dimensional run take part only when that is the configured size again.
    endpoint_embeddings.EMBEDDING_DIM = 256
    active_profile(alpha, 5, SEEKER, toward(0, 1.0, 5, 256), model=MODEL)
    matching_wake(project=alpha)
    matching_run(project=alpha)
    pair = Match.objects.get(user_b__isnull=False)
    assert {pair.user_a.chat.telegram_chat_id, pair.user_b.chat.telegram_chat_id} == {3, 5}


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_old_vectors_and_gives_them_their_size(alpha):
    chat = Chat.objects.create(project=alpha, telegram_chat_id=9, user_id=9)
    executor = MigrationExecutor(connection)
    before, after = [("matching", "0003_embedding_failures")], [("matching", "0004_vectors_of_any_size")]
    executor.migrate(before)
    old_profile = executor.loader.project_state(before).apps.get_model("matching", "Profile")
    vector = toward(0, 1.0, 1, 512)
    old_profile.objects.create(project_id=alpha.pk, chat_id=chat.pk, embedding=vector, embedding_model="usem3/x")
    old_profile.objects.create(project_id=alpha.pk, chat_id=Chat.objects.create(project=alpha, telegram_chat_id=8).pk)

    executor = MigrationExecutor(connection)
    executor.migrate(after)

    migrated = Profile.objects.get(chat=chat)
    assert migrated.embedding_dim == 512
    assert list(migrated.embedding) == pytest.approx(vector)
    assert Profile.objects.get(chat__telegram_chat_id=8).embedding_dim is None
