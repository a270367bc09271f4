"""Follow-up timers: when a customer goes silent the agent gets a [TIMER PING] turn at each step.

Timers are database rows swept by beat, so they survive restarts (overdue ones fire at once). Each
incoming message restarts the sequence. At the last step the lead is dispatched regardless, with a
one-shot summary when the agent wrote none. Nudges wait for the morning in the project's quiet hours.
"""

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.db import transaction
from django.utils import timezone

from bots.conversation import (
    OPEN_STATUSES,
    turn_compose,
    turn_deliver,
    turn_settle_interrupted_send,
    unanswered_messages,
)
from bots.generations import generation_schedule
from bots.models import Chat, Generation, Message, Turn
from core import metrics
from core.log_context import log_context_bind
from leads.models import FollowUp
from leads.services import lead_finish
from leads.state import SalesState
from leads.summary import TIMER_PING, lead_summary_generate
from tenants.models import Project

logger = logging.getLogger(__name__)

POSTPONE_WHEN_BUSY = timedelta(minutes=1)


def followup_restart(chat: Chat, messages: list[Message]) -> None:
    """Messages hook: the customer wrote, so the sequence starts again from its first step."""
    steps = chat.project.followup_steps or []
    if not steps or SalesState.of(chat).lead_id:
        FollowUp.objects.filter(chat=chat).update(fire_at=None)
        return
    now = timezone.now()
    # One INSERT ... ON CONFLICT (chat) DO UPDATE: every customer message passes here.
    FollowUp.objects.bulk_create(
        [FollowUp(chat=chat, project=chat.project, step=0, fire_at=now + timedelta(seconds=steps[0]), updated_at=now)],
        update_conflicts=True, unique_fields=["chat"], update_fields=["project", "step", "fire_at", "updated_at"],
    )  # fmt: skip


def in_quiet_hours(project: Project, moment: datetime) -> datetime | None:
    """The end of the quiet period when `moment` falls into it, else None."""
    start, end = project.quiet_hours_start, project.quiet_hours_end
    if start is None or end is None or start == end:
        return None
    local = moment.astimezone(ZoneInfo(project.timezone))
    now_t = local.time()
    quiet = start <= now_t or now_t < end if start > end else start <= now_t < end
    if not quiet:
        return None
    wake = datetime.combine(local.date(), end, tzinfo=local.tzinfo)
    if wake <= local:
        wake += timedelta(days=1)
    return wake


def followups_fire_due(*, now: datetime | None = None) -> int:
    """Sweep: turn every due timer into a timer-turn generation (claimed once by a conditional update)."""
    now = now or timezone.now()
    fired = 0
    for follow_up in FollowUp.objects.filter(fire_at__lte=now).select_related("chat", "project"):
        if not FollowUp.objects.filter(pk=follow_up.pk, fire_at=follow_up.fire_at).update(fire_at=None):
            continue  # another sweeper took it
        chat, project = follow_up.chat, follow_up.project
        steps = project.followup_steps or []
        last = follow_up.step >= len(steps) - 1
        if chat.paused_at or chat.blocked_at or SalesState.of(chat).lead_id:
            metrics.timer_fires.labels(action="skipped").inc()
            continue
        if not last and (wake := in_quiet_hours(project, now)) is not None:
            FollowUp.objects.filter(pk=follow_up.pk).update(fire_at=wake)
            metrics.timer_fires.labels(action="deferred_quiet_hours").inc()
            continue
        with transaction.atomic():
            generation = generation_schedule(
                project=project, kind=Generation.Kind.TIMER_TURN, chat=chat, target_id=follow_up.step
            )
            if generation.kind != Generation.Kind.TIMER_TURN:
                # A conversation turn is running: this step waits a little rather than being lost.
                FollowUp.objects.filter(pk=follow_up.pk).update(fire_at=now + POSTPONE_WHEN_BUSY)
                metrics.timer_fires.labels(action="postponed_busy").inc()
                continue
            next_fire = None if last else now + timedelta(seconds=steps[follow_up.step + 1])
            FollowUp.objects.filter(pk=follow_up.pk).update(
                last_fired_at=now, step=follow_up.step if last else follow_up.step + 1, fire_at=next_fire
            )
        fired += 1
        metrics.timer_fires.labels(action="scheduled").inc()
    return fired


def timer_turn_handle(generation: Generation) -> None:
    """Generation handler: run the agent on a [TIMER PING] turn; at the last step, dispatch the lead."""
    chat = Chat.objects.select_related("project").get(pk=generation.chat_id)
    log_context_bind(chat_id=chat.telegram_chat_id)
    if chat.paused_at or chat.blocked_at or SalesState.of(chat).lead_id or unanswered_messages(chat).exists():
        return
    steps = chat.project.followup_steps or []
    step = generation.target_id or 0
    last = step >= len(steps) - 1
    # Run again after a crash (its lease ran out), the generation resumes its own turn: a nudge that was
    # composed or sent is not asked of the model, nor sent, a second time.
    turn = Turn.objects.filter(generation=generation).first() or Turn.objects.create(
        project=chat.project, chat=chat, generation=generation, trigger=Turn.Trigger.TIMER,
        user_text=f"{TIMER_PING} step {step + 1} of {len(steps)}; the customer has been silent.",
    )  # fmt: skip
    if turn.status in OPEN_STATUSES and not turn_settle_interrupted_send(turn=turn):
        if turn.status == Turn.Status.COMPOSING:
            turn_compose(turn=turn, generation_id=generation.pk, purpose="timer_turn")
            turn.refresh_from_db()
        turn_deliver(turn=turn)
    chat.refresh_from_db(fields=["state"])
    if last and not SalesState.of(chat).lead_id:
        lead_finish(chat=chat, summary=lead_summary_generate(chat=chat), source="timer")


def followups_active_count() -> int:
    return FollowUp.objects.filter(fire_at__isnull=False).count()
