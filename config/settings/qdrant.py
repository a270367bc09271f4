from config.env import VAR_DIR, env

# Unset QDRANT_URL means the embedded store under QDRANT_PATH (Qdrant Edge), owned by the Celery worker.
QDRANT_URL = env.str("QDRANT_URL", default="")
QDRANT_API_KEY = env.str("QDRANT_API_KEY", default="")
QDRANT_PATH = env.str("QDRANT_PATH", default=str(VAR_DIR / "qdrant"))
# The embedded engine: "edge" (qdrant-edge-py, HNSW in process) or "local" (qdrant-client local mode, brute force).
QDRANT_EMBEDDED_ENGINE = env.str("QDRANT_EMBEDDED_ENGINE", default="edge")
