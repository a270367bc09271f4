from config.env import VAR_DIR, env

# `manage.py backup` and the scheduled backup write here; keep it on another disk or copy it off the host.
BACKUP_DIR = env.str("BACKUP_DIR", default=str(VAR_DIR / "backups"))
BACKUP_KEEP_DAYS = env.int("BACKUP_KEEP_DAYS", default=14)
# The beat's daily backup (UTC hour); BACKUP_SCHEDULE=false turns it off (e.g. where the database is backed up
# by the hosting provider).
BACKUP_SCHEDULE = env.bool("BACKUP_SCHEDULE", default=True)
BACKUP_HOUR_UTC = env.int("BACKUP_HOUR_UTC", default=3)
