"""Metrics of the turn runner and the agent's tools (the engine's own; core.metrics sets the process files up).

Turns in flight is a gauge per process, summed over the live processes of the host (`livesum`); the wait
is a histogram from `scheduled_for` to the claim, so queueing shows apart from the model's time.
"""

from prometheus_client import Counter, Gauge, Histogram

from core.metrics import PREFIX

WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)

turns_in_flight = Gauge(
    f"{PREFIX}turns_in_flight", "Generations running on the async turn runners now", multiprocess_mode="livesum"
)
loop_lag_seconds = Gauge(
    f"{PREFIX}turn_loop_lag_seconds", "How far the turn runner's event loop runs behind (CPU saturation)",
    multiprocess_mode="max",
)  # fmt: skip
generation_wait_seconds = Histogram(
    f"{PREFIX}generation_wait_seconds",
    "Waiting time of a generation, from when it was due (scheduled_for) to its claim",
    ["kind"],
    buckets=WAIT_BUCKETS,
)
tool_failures = Counter(
    f"{PREFIX}tool_failures_total", "Agent tool calls that crashed (e.g. a knowledge search that failed)",
    ["project", "tool"],
)  # fmt: skip
