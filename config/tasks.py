"""Platform tasks: the scheduled backup."""

import logging

from celery import shared_task

from config.backups import backup_create, backups_prune

logger = logging.getLogger(__name__)


@shared_task(time_limit=3 * 3600, soft_time_limit=3 * 3600 - 60)
def backup_scheduled() -> str:
    """Beat's daily backup, then the retention: backups older than BACKUP_KEEP_DAYS go (the newest stays)."""
    result = backup_create()
    removed = backups_prune()
    logger.info("scheduled backup done", extra={"path": str(result.path), "removed": len(removed)})
    return str(result.path)
