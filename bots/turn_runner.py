"""The async turn runner: one per worker process, holding hundreds of generations in flight.

It lives on the process's event loop (bots/event_loop.py). It claims due generations in batches, fairly
across projects (`generations_claim_fair`), and runs each as an asyncio task: a turn waiting for the model
or for Telegram costs no thread, its database and tool steps run on the small fair pool of `in_db`.
At most TURNS_IN_FLIGHT_MAX run at once per process; one heartbeat extends the leases of all of them, so a
killed process's generations go back to the queue when their leases run out (every runner, and the beat
sweep, requeue expired ones).

Admission follows the loop's lag: while the loop runs more than TURN_LOOP_LAG_MAX behind, the process's
CPU is the limit and the runner claims nothing beyond TURNS_IN_FLIGHT_MIN. The due turns wait in the queue,
where the next claim takes projects in turn, instead of on a saturated loop, where every step of every
turn in flight (another tenant's single chat among them) would wait behind the burst's.

Celery stays the dispatcher: a chat task that queued a due turn wakes the runner of its own process
(`turn_runner_wake`); a runner also looks for due work every TURN_RUNNER_POLL_SECONDS (budget-spaced
generations, work queued by other processes).
"""

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field

from django.conf import settings

from bots import turn_metrics
from bots.event_loop import fair_key, in_db, process_loop
from bots.generations import (
    generation_run_async,
    generations_claim_fair,
    generations_extend_leases,
    generations_recover_expired_leases,
)
from bots.models import Generation
from core.log_context import log_context_start

logger = logging.getLogger(__name__)

CLAIM_BATCH = 50
LAG_PROBE_SECONDS = 0.05
SHUTDOWN_GRACE_SECONDS = 20.0


@dataclass
class TurnRunner:
    cap: int
    poll_seconds: float
    lease_seconds: float
    lag_max: float = float("inf")
    floor: int = 0  # turns in flight claimed whatever the lag
    loop_lag: float = 0.0  # seconds, the latest probe's (a spike decays by half per probe)
    running: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    # Held while claimed generations are on their way into `running`: the heartbeat must not take a claim
    # still in flight for a lost worker's (after a stall of the loop its lease may already have run out).
    _claiming: asyncio.Lock = field(default_factory=asyncio.Lock)
    _held_back: bool = False
    _stopping: bool = False
    _main: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(), name="switchboard-lease-heartbeat")
        watcher = asyncio.create_task(self._watch_lag(), name="switchboard-loop-lag")
        try:
            while not self._stopping:
                self._wake.clear()  # before the claim: a wake-up during it is not lost
                claimed = await self._claim()
                if claimed == CLAIM_BATCH and len(self.running) < self.cap:
                    await asyncio.sleep(LAG_PROBE_SECONDS)  # more may be due: claimed once the lag shows this batch
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
        finally:
            heartbeat.cancel()
            watcher.cancel()

    def _admissible(self) -> int:
        """How many more generations this process takes now."""
        free = self.cap - len(self.running)
        if self.loop_lag > self.lag_max:
            free = min(free, self.floor - len(self.running))
        return free

    async def _watch_lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(LAG_PROBE_SECONDS)
            lag = max(0.0, loop.time() - started - LAG_PROBE_SECONDS)
            self.loop_lag = max(lag, self.loop_lag / 2)
            turn_metrics.loop_lag_seconds.set(self.loop_lag)
            if self._held_back and self._admissible() > 0:
                self._held_back = False
                self._wake.set()

    async def _claim(self) -> int:
        free = self._admissible()
        if free <= 0:
            self._held_back = True  # the lag watcher wakes the runner once the loop keeps up again
            return 0
        async with self._claiming:
            try:
                generations = await in_db(generations_claim_fair, limit=min(free, CLAIM_BATCH))
            except Exception:
                logger.exception("turn runner: claiming generations failed; retrying")
                generations = None
            for generation in generations or ():
                self.running[generation.pk] = asyncio.create_task(
                    self._run_one(generation), name=f"gen-{generation.pk}"
                )
        if generations is None:
            await asyncio.sleep(1.0)
            return 0
        turn_metrics.turns_in_flight.set(len(self.running))
        return len(generations)

    async def _run_one(self, generation: Generation) -> None:
        log_context_start(project_id=generation.project_id, generation_id=generation.pk)
        fair_key.set(generation.project_id)
        try:
            await generation_run_async(generation=generation)
        except Exception:
            logger.exception("turn runner: generation %s crashed", generation.pk)
        finally:
            self.running.pop(generation.pk, None)
            turn_metrics.turns_in_flight.set(len(self.running))
            self._wake.set()  # a slot is free, and the follow-up may have queued the chat's next turn

    async def _heartbeat(self) -> None:
        last_recovery = 0.0
        while True:
            await asyncio.sleep(self.lease_seconds / 4)
            async with self._claiming:
                ids = list(self.running)
                if ids:
                    try:
                        await in_db(generations_extend_leases, ids=ids)
                    except Exception:
                        logger.exception("turn runner: lease heartbeat failed")
                if time.monotonic() - last_recovery >= self.lease_seconds / 2:
                    # A killed worker's turns come back as soon as their leases run out, not at the next beat;
                    # never this process's own, whose leases a stall may have let run out.
                    last_recovery = time.monotonic()
                    try:
                        if await in_db(generations_recover_expired_leases, exclude_ids=ids):
                            self._wake.set()
                    except Exception:
                        logger.exception("turn runner: recovering expired leases failed")

    async def stop(self, *, grace: float) -> None:
        """Stop claiming, let the turns in flight finish for up to `grace` seconds; the rest keep their
        leases, which run out, and the sweep gives them to another worker."""
        self._stopping = True
        self._wake.set()
        pending = list(self.running.values())
        if pending:
            _, unfinished = await asyncio.wait(pending, timeout=grace)
            if unfinished:
                logger.warning("turn runner stopped with %d turns in flight; their leases will expire", len(unfinished))
        if self._main is not None:
            self._main.cancel()


_runner: TurnRunner | None = None


def turn_runner_start() -> TurnRunner:
    """Start this process's runner on its event loop (idempotent)."""
    global _runner
    if _runner is not None:
        return _runner
    loop = process_loop()

    async def create() -> TurnRunner:
        runner = TurnRunner(
            cap=settings.TURNS_IN_FLIGHT_MAX,
            poll_seconds=settings.TURN_RUNNER_POLL_SECONDS,
            lease_seconds=settings.GENERATION_LEASE_SECONDS,
            lag_max=settings.TURN_LOOP_LAG_MAX,
            floor=settings.TURNS_IN_FLIGHT_MIN,
        )
        runner._main = asyncio.create_task(runner.run(), name="switchboard-turn-runner")
        return runner

    _runner = asyncio.run_coroutine_threadsafe(create(), loop).result(10)
    logger.info("turn runner started: up to %d generations in flight", _runner.cap)
    return _runner


def turn_runner_stop(*, grace: float = SHUTDOWN_GRACE_SECONDS) -> None:
    global _runner
    runner, _runner = _runner, None
    if runner is None:
        return
    started = time.monotonic()
    asyncio.run_coroutine_threadsafe(runner.stop(grace=grace), process_loop()).result(grace + 5)
    logger.info("turn runner stopped after %.1f s", time.monotonic() - started)


def turn_runner_wake() -> bool:
    """Tell this process's runner that work is due; False when the process has none (then enqueue)."""
    runner = _runner
    if runner is None:
        return False
    process_loop().call_soon_threadsafe(runner.wake)
    return True
