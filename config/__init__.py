import os

# One BLAS thread per process, set before anything imports numpy. The offline encoder and Qdrant's local
# mode multiply small matrices, where OpenBLAS's thread pool only fights the worker's own threads and the
# other processes for the cores: on 2 shared cores, embedding went from 36 to 93 chunks/s and a query's
# embedding p95 from 42 to 5 ms (BENCHMARKS.md). Set these variables to override.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

from config.celery_app import app as celery_app  # noqa: E402

__all__ = ("celery_app",)
