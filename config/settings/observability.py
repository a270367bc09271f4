"""Metrics, structured logs, error reporting and turn traces, each switched by an env value."""

import os
from pathlib import Path

from config.env import VAR_DIR, env

# Every process of one host (gunicorn workers, Celery processes) writes its metrics into this directory
# and `GET /metrics` adds them up. prometheus_client reads it from the environment, so it is exported
# before any metric exists; wipe it when the whole host restarts (the dev runner and gunicorn do).
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="") or str(VAR_DIR / "prometheus")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = PROMETHEUS_MULTIPROC_DIR
Path(PROMETHEUS_MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)
# Set: `GET /metrics` wants `Authorization: Bearer <token>` (for a scraper that reaches the public web).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# Unset: no error reporting at all (tests never set it).
SENTRY_DSN = env.str("SENTRY_DSN", default="")
SENTRY_ENVIRONMENT = env.str("SENTRY_ENVIRONMENT", default="production")
SENTRY_TRACES_SAMPLE_RATE = env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0)

# Per-turn trace records (model calls, tool calls and results with timings), viewable in the admin.
TURN_TRACES = env.bool("TURN_TRACES", default=True)

if SENTRY_DSN:
    from core.error_reporting import sentry_init

    sentry_init(dsn=SENTRY_DSN, environment=SENTRY_ENVIRONMENT, traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE)
