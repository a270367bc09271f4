"""What a worker process sets up for itself when Celery starts it."""

import sys

from bots import worker_signals


def test_a_starting_worker_takes_the_configured_gil_switch_interval(settings):
    settings.WORKER_NICE, settings.WORKER_SWITCH_INTERVAL = 0, 0.002
    before = sys.getswitchinterval()
    try:
        worker_signals._note_pool(sender=None)
        assert sys.getswitchinterval() == 0.002
    finally:
        sys.setswitchinterval(before)
