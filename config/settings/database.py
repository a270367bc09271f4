from config.embedded_postgres import embedded_database_url
from config.env import VAR_DIR, env

DATABASE_URL = env.str("DATABASE_URL", default="") or embedded_database_url(VAR_DIR / "pgdata")
DATABASES = {"default": env.db_url_config(DATABASE_URL)}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
