"""The generation queue: every LLM job is a row, spaced by the project's weekly budget.

interval = last_cost_usd * 604800 / weekly_budget_usd; scheduled_for = max(latest scheduled_for, now) + interval.
The project's first generation runs at once; no budget means no spacing. Workers claim due rows with
SELECT ... FOR UPDATE SKIP LOCKED and hold a lease that a heartbeat extends, so a killed worker's
generation goes back to the queue when its lease runs out.

A generation runs as a coroutine (`generation_run_async`): the async turn runner of a worker process
(bots/turn_runner.py) holds hundreds at once, claimed in batches that take projects in turn
(`generations_claim_fair`). `generations_process_due` runs them one by one from synchronous code
(`manage.py chat`, tests, a worker without the runner).
"""

import asyncio
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, connection, transaction
from django.db.models import Q, Sum
from django.utils import timezone

from bots import turn_metrics
from bots.event_loop import in_blocking, in_db, run_sync
from bots.llm.recording import UsageTally, usage_tally
from bots.models import Chat, Generation, LLMCall
from core import metrics
from core.log_context import log_context_bind
from tenants.models import Project

logger = logging.getLogger(__name__)

WEEK_SECONDS = 604800
SCHEDULER_LOCK = 0x5C4D  # first key of the advisory lock that lets one budget scheduler per project run
MAX_ATTEMPTS = 3
# Over its weekly cap a project's background work waits; it is looked at again this often.
CAP_RECHECK = timedelta(hours=1)
TURN_KINDS = (Generation.Kind.CHAT_TURN, Generation.Kind.TIMER_TURN)
# A generation the database interrupted runs again after this pause.
REQUEUE_AFTER = timedelta(seconds=2)

# A handler is a coroutine function (it awaits the model; chat turns) or a plain function (it runs on a
# thread of its own pool, e.g. the instructor-based structured outputs of qualification and summaries).
GenerationHandler = Callable[[Generation], None] | Callable[[Generation], Awaitable[None]]
_handlers: dict[str, GenerationHandler] = {}
_finishers: dict[str, Callable[[Generation], None]] = {}


def register_generation_kind(
    kind: str, *, handler: GenerationHandler, on_finished: Callable[[Generation], None] | None = None
) -> None:
    """Apps register how their generations run, and what follows one (in their AppConfig.ready)."""
    _handlers[kind] = handler
    if on_finished is not None:
        _finishers[kind] = on_finished


def _lease() -> timedelta:
    return timedelta(seconds=settings.GENERATION_LEASE_SECONDS)


def generation_interval(*, last_cost_usd: Decimal, weekly_budget_usd: Decimal | None) -> timedelta:
    if not weekly_budget_usd or weekly_budget_usd <= 0 or last_cost_usd <= 0:
        return timedelta(0)
    return timedelta(seconds=float(last_cost_usd * WEEK_SECONDS / weekly_budget_usd))


def _last_cost(project: Project) -> Decimal:
    last = (
        Generation.objects.filter(project=project, status=Generation.Status.DONE)
        .order_by("-finished_at", "-pk")
        .values_list("cost_usd", flat=True)
        .first()
    )
    return last or Decimal(0)


# The project's latest slot (its index walks to it) and the chat's queued or running turn (the partial unique
# index's rows), in one round-trip: two scalar subqueries, not an aggregate scanning the project's rows.
_LATEST_AND_ACTIVE_SQL = """
SELECT (SELECT max(scheduled_for) FROM bots_generation WHERE project_id = %(project)s),
       (SELECT id FROM bots_generation WHERE chat_id = %(chat)s AND status IN ('pending', 'running')
        AND kind IN ('chat_turn', 'timer_turn') ORDER BY id LIMIT 1)
"""


def _latest_slot_and_active_turn(project: Project, chat: Chat | None) -> tuple[datetime | None, int | None]:
    with connection.cursor() as cursor:
        cursor.execute(_LATEST_AND_ACTIVE_SQL, {"project": project.pk, "chat": chat.pk if chat else None})
        latest, active = cursor.fetchone()
    return latest, active


def generation_schedule(
    *, project: Project, kind: str, chat: Chat | None = None, target_id: int | None = None, now: datetime | None = None
) -> Generation:
    """Queue one generation at the time the budget allows. For turns: at most one active per chat."""
    now = now or timezone.now()
    # No savepoint of its own inside a caller's transaction (the chat task's): nothing here catches an error
    # but the insert's own race below, so a failure rolls the caller's work back with it, as it did before.
    with transaction.atomic(savepoint=False):
        # One scheduler per project at a time, so two new generations never take the same slot. Without a
        # budget there is no spacing (no slot to take): then schedulers of one project need not queue on
        # its row, which a burst of hundreds of chats would otherwise serialise on.
        if project.weekly_budget_usd:
            # A transaction-scoped advisory lock, not the project's row: per-message paths lock chat rows,
            # and a tuple lock on the project row taken after them deadlocked concurrent turns of a project.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [SCHEDULER_LOCK, project.pk])
        latest, active = _latest_slot_and_active_turn(project, chat if kind in TURN_KINDS else None)
        if active is not None:
            return Generation.objects.get(pk=active)
        if latest is None:
            scheduled_for = now
        elif not project.weekly_budget_usd:
            scheduled_for = max(latest, now)  # no budget, no spacing (and no need for the last cost)
        else:
            interval = generation_interval(
                last_cost_usd=_last_cost(project), weekly_budget_usd=project.weekly_budget_usd
            )
            scheduled_for = max(latest, now) + interval
        try:
            with transaction.atomic():
                return Generation.objects.create(
                    project=project, kind=kind, chat=chat, target_id=target_id, scheduled_for=scheduled_for
                )
        except IntegrityError:
            # Lost a race with another scheduler for the same chat: theirs serves this chat too.
            return Generation.objects.get(chat=chat, kind__in=TURN_KINDS, status__in=Generation.ACTIVE)


def generation_claim_next(*, now: datetime | None = None, chat: Chat | None = None) -> Generation | None:
    """Claim the most overdue pending generation (of one chat, if given), or None when nothing is due."""
    now = now or timezone.now()
    due = Generation.objects.filter(status=Generation.Status.PENDING, scheduled_for__lte=now)
    if chat is not None:
        due = due.filter(chat=chat)
    with transaction.atomic():
        generation = due.select_for_update(skip_locked=True).order_by("scheduled_for", "pk").first()
        if generation is None:
            return None
        generation.status = Generation.Status.RUNNING
        generation.started_at = now
        generation.lease_expires_at = now + _lease()
        generation.attempts += 1
        generation.save(update_fields=["status", "started_at", "lease_expires_at", "attempts"])
    return generation


# Round-robin over projects: each project's due generations are ranked by age, then offset by what the
# project already has running, so a burst of one tenant cannot push another tenant's single turn back.
_FAIR_CLAIM_SQL = """
WITH running AS (
    SELECT project_id, count(*) AS running FROM bots_generation WHERE status = 'running' GROUP BY project_id
), due AS (
    SELECT g.id, g.scheduled_for,
           row_number() OVER (PARTITION BY g.project_id ORDER BY g.scheduled_for, g.id)
               + coalesce(r.running, 0) AS turn_of_project
    FROM bots_generation g LEFT JOIN running r ON r.project_id = g.project_id
    WHERE g.status = 'pending' AND g.scheduled_for <= %(now)s
), picked AS (
    SELECT id, turn_of_project FROM due ORDER BY turn_of_project, scheduled_for, id LIMIT %(limit)s
), locked AS (
    SELECT id FROM bots_generation WHERE id IN (SELECT id FROM picked) AND status = 'pending'
    FOR UPDATE SKIP LOCKED
)
UPDATE bots_generation g
SET status = 'running', started_at = %(now)s, lease_expires_at = %(lease)s, attempts = g.attempts + 1
FROM locked JOIN picked ON picked.id = locked.id WHERE g.id = locked.id
RETURNING g.*, picked.turn_of_project AS claim_turn
"""


def generations_claim_fair(*, limit: int, now: datetime | None = None) -> list[Generation]:
    """Claim up to `limit` due generations, taking projects in turn (fewest running first); claim order."""
    now = now or timezone.now()
    with transaction.atomic():
        claimed = list(
            Generation.objects.raw(_FAIR_CLAIM_SQL, {"now": now, "limit": int(limit), "lease": now + _lease()})
        )
    # RETURNING gives no order: restore the fair one.
    order = sorted(claimed, key=lambda g: (g.claim_turn, g.scheduled_for, g.pk))
    for generation in order:
        turn_metrics.generation_wait_seconds.labels(kind=generation.kind).observe(
            max(0.0, (now - generation.scheduled_for).total_seconds())
        )
    return order


def generations_extend_leases(*, ids: list[int], now: datetime | None = None) -> int:
    """One heartbeat for every generation a process runs: their leases move on together."""
    if not ids:
        return 0
    now = now or timezone.now()
    return Generation.objects.filter(pk__in=ids, status=Generation.Status.RUNNING).update(
        lease_expires_at=now + _lease()
    )


@contextmanager
def _lease_heartbeat(generation: Generation) -> Iterator[None]:
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(settings.GENERATION_LEASE_SECONDS / 4):
                Generation.objects.filter(pk=generation.pk, status=Generation.Status.RUNNING).update(
                    lease_expires_at=timezone.now() + _lease()
                )
        finally:
            connection.close()  # this thread's connection goes back to the pool, not away with the thread

    thread = threading.Thread(target=beat, name=f"lease-{generation.pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


def _record_usage(generation: Generation) -> None:
    tally = usage_tally.get()
    if generation.attempts == 1 and tally is not None and tally.generation_id == generation.pk:
        # Its first run: every call of the generation was recorded by this run, which added them up meanwhile.
        generation.tokens_in, generation.tokens_out = tally.tokens_in, tally.tokens_out
        generation.tokens_cached, generation.cost_usd = tally.tokens_cached, tally.cost_usd
        return
    # Summed here: the generation has a few calls, and four Sum() aggregates cost more to build than this.
    rows = LLMCall.objects.filter(generation=generation).values_list(
        "tokens_in", "tokens_out", "tokens_cached", "cost_usd"
    )
    generation.tokens_in = generation.tokens_out = generation.tokens_cached = 0
    generation.cost_usd = Decimal(0)
    for tokens_in, tokens_out, tokens_cached, cost in rows:
        generation.tokens_in += tokens_in
        generation.tokens_out += tokens_out
        generation.tokens_cached += tokens_cached
        generation.cost_usd += cost


def _deferred_over_cap(generation: Generation) -> bool:
    """Background work of a project over its weekly cap waits for the window (turns answer politely)."""
    if generation.kind in TURN_KINDS or not project_over_weekly_cap(project=generation.project):
        return False
    Generation.objects.filter(pk=generation.pk).update(
        status=Generation.Status.PENDING,
        scheduled_for=timezone.now() + CAP_RECHECK,
        attempts=generation.attempts - 1,
    )
    return True


def _run_requeue(generation: Generation, error: str) -> None:
    """Back to the queue after an interruption (or failed, after MAX_ATTEMPTS); if this write fails too,
    the lease runs out and the sweep requeues it."""
    if generation.attempts >= MAX_ATTEMPTS:
        generation.status, generation.error = Generation.Status.FAILED, error[:2000]
        _run_record(generation)
        return
    Generation.objects.filter(pk=generation.pk, status=Generation.Status.RUNNING).update(
        status=Generation.Status.PENDING, scheduled_for=timezone.now() + REQUEUE_AFTER, lease_expires_at=None
    )


def _run_record(generation: Generation) -> None:
    generation.finished_at = timezone.now()
    _record_usage(generation)
    generation.save(
        update_fields=["status", "error", "finished_at", "tokens_in", "tokens_out", "tokens_cached", "cost_usd"]
    )
    project = metrics.project_label(generation.project_id)
    metrics.generations.labels(project=project, kind=generation.kind, status=generation.status).inc()
    metrics.generation_cost_usd.labels(project=project, kind=generation.kind).inc(float(generation.cost_usd))
    if (finisher := _finishers.get(generation.kind)) is not None:
        finisher(generation)


async def generation_run_async(*, generation: Generation) -> None:
    """Run a claimed generation with its kind's handler and record the outcome and its cost."""
    handler = _handlers.get(generation.kind)
    log_context_bind(project_id=generation.project_id, generation_id=generation.pk, chat_id=None)
    usage_tally.set(UsageTally(generation_id=generation.pk))  # this run's calls, summed as they are recorded
    if generation.kind not in TURN_KINDS and await in_db(_deferred_over_cap, generation):
        return
    ids = {"project_id": generation.project_id, "chat_id": generation.chat_id, "generation_id": generation.pk}
    try:
        if handler is None:
            raise RuntimeError(f"no handler registered for generation kind {generation.kind!r}")
        if inspect.iscoroutinefunction(handler):
            deadline = asyncio.timeout(settings.GENERATION_MAX_SECONDS)
            try:
                async with deadline:
                    await handler(generation)
            except TimeoutError:
                if not deadline.expired():
                    raise  # the handler's own timeout: a failure like any other
                seconds = settings.GENERATION_MAX_SECONDS
                logger.error("generation still running after %g s: cancelled and queued again", seconds, extra=ids)
                await in_db(_run_requeue, generation, f"ran longer than {seconds:g} s")
                return
        else:
            # A blocking handler gets a thread of its own pool, so it never holds the turns' database threads.
            await in_blocking(handler, generation)
    except (OperationalError, InterfaceError) as exc:
        # The database went away mid-run (a restart, dropped connections): the work is not at fault and
        # resumes where it stopped (a turn reopens its stored state), so it goes back to the queue.
        logger.warning("generation interrupted by the database (%s); queued again", exc, extra=ids)
        await in_db(_run_requeue, generation, f"{type(exc).__name__}: {exc}")
        return
    except Exception as exc:
        logger.exception("generation failed", extra=ids)
        generation.status, generation.error = Generation.Status.FAILED, f"{type(exc).__name__}: {exc}"[:2000]
    else:
        generation.status = Generation.Status.DONE
    await in_db(_run_record, generation)
    # One line per generation, carrying the ids the turn bound (project, Telegram chat, generation).
    logger.info("generation %s finished: %s", generation.kind, generation.status)


def generation_run(*, generation: Generation) -> None:
    """`generation_run_async` from synchronous code, its lease kept by a heartbeat thread meanwhile."""
    with _lease_heartbeat(generation):
        run_sync(generation_run_async(generation=generation))


def generations_process_due(*, max_seconds: float = 50.0, chat: Chat | None = None) -> int:
    """Run due generations one after another for a bounded time; returns how many ran."""
    deadline = timezone.now() + timedelta(seconds=max_seconds)
    count = 0
    while timezone.now() < deadline and (generation := generation_claim_next(chat=chat)) is not None:
        generation_run(generation=generation)
        count += 1
    return count


def generations_recover_expired_leases(*, now: datetime | None = None, exclude_ids: list[int] | None = None) -> int:
    """Give generations of dead workers back to the queue (or fail them after MAX_ATTEMPTS).

    `exclude_ids`: the caller's own generations in flight, alive whatever their lease says."""
    now = now or timezone.now()
    expired = Q(status=Generation.Status.RUNNING, lease_expires_at__lt=now) & ~Q(pk__in=exclude_ids or [])
    failed = Generation.objects.filter(expired, attempts__gte=MAX_ATTEMPTS).update(
        status=Generation.Status.FAILED, finished_at=now, error="worker lost too many times"
    )
    requeued = Generation.objects.filter(expired, attempts__lt=MAX_ATTEMPTS).update(
        status=Generation.Status.PENDING, scheduled_for=now, lease_expires_at=None
    )
    if failed or requeued:
        logger.warning("recovered generations of lost workers", extra={"requeued": requeued, "failed": failed})
    return requeued


def next_due_at() -> datetime | None:
    return (
        Generation.objects.filter(status=Generation.Status.PENDING)
        .order_by("scheduled_for")
        .values_list("scheduled_for", flat=True)
        .first()
    )


def project_spend_usd(*, project: Project, since: datetime) -> Decimal:
    total = LLMCall.objects.filter(project=project, created_at__gte=since).aggregate(total=Sum("cost_usd"))["total"]
    return total or Decimal(0)


def project_over_weekly_cap(*, project: Project, now: datetime | None = None) -> bool:
    if not project.weekly_cap_usd:
        return False
    now = now or timezone.now()
    return project_spend_usd(project=project, since=now - timedelta(days=7)) >= project.weekly_cap_usd
