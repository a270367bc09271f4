from config.embedded_postgres import embedded_database_url
from config.env import VAR_DIR, env

DATABASE_URL = env.str("DATABASE_URL", default="") or embedded_database_url(VAR_DIR / "pgdata")
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
# Each process draws its connections from a psycopg pool of at most DB_POOL_MAX_SIZE (12: the worker's
# turn runner threads, its Celery threads and the heartbeat), so load (hundreds of
# turns in flight, many web threads) queues for a connection instead of exhausting PostgreSQL's
# max_connections (100 for the embedded server). 0 switches the pool off; connections are then per thread
# and kept DB_CONN_MAX_AGE seconds. A pool requires CONN_MAX_AGE 0 (the pool itself keeps connections).
DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=12)
DB_POOL_TIMEOUT_SECONDS = env.float("DB_POOL_TIMEOUT_SECONDS", default=30.0)
if DB_POOL_MAX_SIZE > 0:
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DB_POOL_MIN_SIZE", default=1),
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": DB_POOL_TIMEOUT_SECONDS,
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # With a pool, Django checks each connection as it leaves the pool: one the server dropped meanwhile
    # (a restart, pg_terminate_backend) is replaced instead of failing the request or turn that drew it.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
