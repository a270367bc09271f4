"""Why a project cannot answer right now, each reason with its fix: the banners of the project console."""

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from bots.generations import project_over_weekly_cap, project_spend_usd
from bots.llm.pricing import fallback_price, unpriced_models
from bots.llm.readiness import llm_readiness
from bots.llm.slots import InvalidModelId, resolve_chain
from bots.models import LLMCall
from knowledge.golden import retrieval_quality
from tenants.models import Project

REJECTED_KEY_WINDOW = timedelta(hours=24)
REJECTED = Q(error__startswith="HTTP 401") | Q(error__startswith="HTTP 403")


@dataclass(frozen=True)
class Blocker:
    code: str  # no_llm, key_rejected, cap_reached, no_webhook, no_price, retrieval_worse
    level: str  # "bad": the bot cannot answer; "warn": it answers, but something is off
    title: str
    fix: str


def _rejected_key(project: Project) -> LLMCall | None:
    """The latest call refused for its key (401/403), unless a call succeeded after it."""
    since = timezone.now() - REJECTED_KEY_WINDOW
    calls = LLMCall.objects.filter(project=project, created_at__gte=since)
    refused = calls.filter(REJECTED).order_by("-pk").first()
    if refused is None or calls.filter(pk__gt=refused.pk, status=LLMCall.Status.OK).exists():
        return None
    return refused


def project_blockers(*, project: Project) -> list[Blocker]:
    blockers = []
    readiness = llm_readiness(project=project)
    if not readiness.ready:
        blockers.append(Blocker("no_llm", "bad", readiness.problem, readiness.fix))
    elif (refused := _rejected_key(project)) is not None:
        blockers.append(Blocker(
            "key_rejected", "bad",
            f"The provider rejected the API key for {refused.model} ({refused.error[:160]}).",
            "Put a valid key into OPENAI_API_KEYS / ANTHROPIC_API_KEYS (a key pool rotates, so check each one) "
            "and restart; check the key's project and billing at the provider.",
        ))  # fmt: skip
    if project_over_weekly_cap(project=project):
        spend = project_spend_usd(project=project, since=timezone.now() - timedelta(days=7))
        blockers.append(Blocker(
            "cap_reached", "bad",
            f"The weekly cap is reached: ${spend:.2f} spent in the last 7 days of a ${project.weekly_cap_usd} cap. "
            "Users get the 'temporarily unavailable' reply; leads still go out.",
            "Raise or clear Weekly cap (USD) in the Budget settings below; otherwise answers resume by themselves "
            "as the 7-day window moves on.",
        ))  # fmt: skip
    if not project.is_deleted and project.webhook_registered_at is None:
        blockers.append(Blocker(
            "no_webhook", "warn",
            "The Telegram webhook is not registered: Telegram users reach nothing yet "
            "(`manage.py chat` and `telegram_poll` still work).",
            f"Set the real bot token, make PUBLIC_BASE_URL an HTTPS address Telegram can reach (now "
            f"{settings.PUBLIC_BASE_URL}), then press Verify token and register webhook.",
        ))  # fmt: skip
    models = []
    for slot in ("toolcaller", "extract", "summary"):
        try:
            models += [ref.id for ref in resolve_chain(project=project, slot=slot)]
        except InvalidModelId:
            continue
    if missing := unpriced_models(models=models):
        price = fallback_price()
        blockers.append(Blocker(
            "no_price", "warn",
            f"No price for {', '.join(missing)}: its calls count at the fallback price (${price.input_per_million} "
            f"in / ${price.output_per_million} out per million tokens), so spend and budgets are estimates.",
            "Add the model's price under LLM → Model prices (a superuser), or set LLM_FALLBACK_PRICE_*.",
        ))  # fmt: skip
    if project.kind == Project.Kind.SALES and (worse := _retrieval_worse(project)) is not None:
        blockers.append(worse)
    return blockers


def _retrieval_worse(project: Project) -> Blocker | None:
    """The latest crawl made golden questions lose (or bury) the page that answers them."""
    quality = retrieval_quality(project=project)
    evaluation = quality.crawl_evaluation
    if evaluation is None:
        return None
    previous = evaluation.previous
    crawl = f"crawl #{evaluation.job_id}" if evaluation.job_id else "the latest crawl"
    lost = "; ".join(f'"{result.question}" ({_rank_change(result.previous_rank, result.rank)})'
                     for result in quality.crawl_regressions)  # fmt: skip
    scores = (f"recall@3 {previous.recall_at_3:.2f} → {evaluation.recall_at_3:.2f}, MRR {previous.mrr:.2f} → "
              f"{evaluation.mrr:.2f}") if previous else ""  # fmt: skip
    return Blocker(
        "retrieval_worse", "warn",
        f"The knowledge base answers worse since {crawl}: {scores}. Lost: {lost}.",
        "Open the crawl's report for removed or changed pages; restore the page on the site and crawl again, or "
        "point the golden question at the page that answers it now.",
    )  # fmt: skip


def _rank_change(before: int | None, after: int | None) -> str:
    was = f"rank {before}" if before else "missing"
    return f"{was} → {'rank ' + str(after) if after else 'not found'}"
