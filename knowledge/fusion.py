"""The hybrid search's fusion parameters, in one place: re-tune them here after an embedding-model change.

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
