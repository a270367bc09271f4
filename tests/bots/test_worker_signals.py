"""What a worker process sets up for itself when Celery starts it."""

import gc
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


def test_a_started_worker_freezes_what_it_loaded_and_takes_the_configured_gc_thresholds(settings, monkeypatch):
    settings.TURN_RUNNER, settings.WORKER_GC_THRESHOLDS = False, [12345, 21, 31]
    monkeypatch.setattr(worker_signals, "chat_intake_listen", lambda: None)  # no listener in the test process
    before = gc.get_threshold()
    try:
        worker_signals._start_in_main_process()
        assert gc.get_threshold() == (12345, 21, 31)
        assert gc.get_freeze_count() > 1000  # Django, Celery and the libraries: never walked again
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
