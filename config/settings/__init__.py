"""Settings: Django core in `base`, then one module per integration, each driven by env values."""

from config.settings.backups import *  # noqa: F403
from config.settings.base import *  # noqa: F403
from config.settings.celery import *  # noqa: F403
from config.settings.console import *  # noqa: F403
from config.settings.database import *  # noqa: F403
from config.settings.llm import *  # noqa: F403
from config.settings.logging import *  # noqa: F403
from config.settings.observability import *  # noqa: F403
from config.settings.qdrant import *  # noqa: F403
from config.settings.security import *  # noqa: F403
from config.settings.telegram import *  # noqa: F403
