from config.env import VAR_DIR, env

# Unset QDRANT_URL means qdrant-client local mode under QDRANT_PATH, owned by the Celery worker.
QDRANT_URL = env.str("QDRANT_URL", default="")
QDRANT_API_KEY = env.str("QDRANT_API_KEY", default="")
QDRANT_PATH = env.str("QDRANT_PATH", default=str(VAR_DIR / "qdrant"))
