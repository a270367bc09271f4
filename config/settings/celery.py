from celery.schedules import crontab

from config import queues
from config.env import env
from config.settings.backups import BACKUP_HOUR_UTC, BACKUP_SCHEDULE

REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")

CELERY_BROKER_URL = REDIS_URL
# Results are kept only for the few tasks the web process waits on (e.g. the search playground, since
# in local mode only the worker may open the Qdrant store); every other task ignores its result.
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_RESULT_EXPIRES = 600
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
CELERY_TASK_DEFAULT_QUEUE = queues.DEFAULT
CELERY_TASK_QUEUES_NAMES = queues.ALL
CELERY_TASK_ROUTES = queues.ROUTES
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=600)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=540)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# One worker process with a thread pool by default: it owns the embedded vector store, and its async turn
# runner (bots/turn_runner.py) holds the turns, so the threads only serve short tasks (chat processing,
# leads, crawls). With QDRANT_URL set, `-P prefork` and more processes or hosts scale out.
CELERY_WORKER_POOL = env.str("CELERY_WORKER_POOL", default="threads")
CELERY_WORKER_CONCURRENCY = env.int("WORKER_CONCURRENCY", default=4)
# A worker lowers its CPU priority by this much at start (0: not), so that it never starves the web
# processes on the same host: the webhook answers in milliseconds, a turn waits seconds for the model anyway.
WORKER_NICE = env.int("WORKER_NICE", default=10)
# The worker's GIL switch interval in seconds (Python's default is 0.005): shorter slices let a thread back
# from the database or the network run sooner while other threads compute (measured in BENCHMARKS.md).
WORKER_SWITCH_INTERVAL = env.float("WORKER_SWITCH_INTERVAL", default=0.001)
# The worker's garbage-collector thresholds (gen0 allocations, gen1 and gen2 passes; Python's default is
# 700, 10, 10; empty: Python's): what the process loaded at start is frozen first (bots/worker_signals.py).
WORKER_GC_THRESHOLDS = env.list("WORKER_GC_THRESHOLDS", cast=int, default=[20000, 50, 100])
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis redelivers an unacked task after this long; longer than any task's time limit.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Installed into django-celery-beat's tables on start; editable in the admin afterwards.
CELERY_BEAT_SCHEDULE = {
    "engine-sweep": {"task": "bots.tasks.engine_sweep", "schedule": 10.0},
    "crawl-resume-stale": {"task": "knowledge.tasks.crawl_jobs_resume_stale", "schedule": 60.0},
    "crawl-schedules": {"task": "knowledge.tasks.crawl_schedules_sweep", "schedule": 60.0},
    "leads-sweep": {"task": "leads.tasks.leads_sweep", "schedule": 15.0},
    "matching-tick": {"task": "matching.tasks.matching_tick", "schedule": 60.0},
}
if BACKUP_SCHEDULE:
    CELERY_BEAT_SCHEDULE["backup-daily"] = {
        "task": "config.tasks.backup_scheduled", "schedule": crontab(hour=BACKUP_HOUR_UTC, minute=0),
    }  # fmt: skip
