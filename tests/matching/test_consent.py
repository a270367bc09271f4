"""Mutual consent through the inline buttons: only the two participants, each transition once."""

import random
import threading

import pytest
from django.db import connection

from bots.models import Chat
from matching.consent import match_introduce
from matching.models import Match, Profile
from tests.matching import dialogue
from tests.matching.dialogue import active_profile, texts_to, toasts, toward

pytestmark = pytest.mark.django_db

SEEKER, PROVIDER = 1, 2
USERNAMES = {SEEKER: "ann_dev", PROVIDER: ""}  # the provider has no Telegram username


def press(project, chat_id: int, data: str) -> None:
    dialogue.press(project, chat_id, data, username=USERNAMES.get(chat_id))


def introduced_pair(project) -> Match:
    seeker = active_profile(project, SEEKER, Profile.Role.SEEKER, toward(0, 1.0, 1), username=USERNAMES[SEEKER],
                            summary="Python developer, remote.")  # fmt: skip
    provider = active_profile(project, PROVIDER, Profile.Role.PROVIDER, toward(0, 0.9, 2),
                              username=USERNAMES[PROVIDER], summary="Agency hiring Python developers.")  # fmt: skip
    match = Match.objects.create(
        project=project, user_a=seeker, user_b=provider, round=1, similarity=0.9, status=Match.Status.QUALIFIED
    )
    assert match_introduce(match=match)
    return match


def contacts_to(fake_telegram, project, chat_id: int) -> list[str]:
    return [text for text in texts_to(fake_telegram, project, chat_id) if text.startswith("It's a match!")]


def status_of(match: Match) -> str:
    return Match.objects.get(pk=match.pk).status


def test_both_accept_and_each_receives_the_others_contact_exactly_once(alpha, fake_telegram):
    match = introduced_pair(alpha)

    press(alpha, SEEKER, f"match:accept:{match.pk}")
    assert status_of(match) == Match.Status.A_ACCEPTED
    assert texts_to(fake_telegram, alpha, SEEKER)[-1].startswith("Thank you!")
    press(alpha, PROVIDER, f"match:accept:{match.pk}")
    press(alpha, PROVIDER, f"match:accept:{match.pk}")  # late repeats change nothing
    press(alpha, SEEKER, f"match:accept:{match.pk}")

    assert status_of(match) == Match.Status.CONNECTED
    [to_seeker] = contacts_to(fake_telegram, alpha, SEEKER)
    [to_provider] = contacts_to(fake_telegram, alpha, PROVIDER)
    # The provider has no username: a tg:// link by user id; the seeker has one: a t.me link.
    assert f"tg://user?id={PROVIDER}" in to_seeker
    assert "Agency hiring Python developers." in to_seeker
    assert "https://t.me/ann_dev" in to_provider
    assert "private note" not in to_seeker + to_provider
    assert toasts(fake_telegram, alpha)[-2:] == ["This match is no longer open.", "This match is no longer open."]


def test_accept_then_reject_gives_nobody_a_contact(alpha, fake_telegram):
    match = introduced_pair(alpha)

    press(alpha, SEEKER, f"match:accept:{match.pk}")
    press(alpha, PROVIDER, f"match:reject:{match.pk}")
    press(alpha, SEEKER, f"match:accept:{match.pk}")

    assert status_of(match) == Match.Status.REJECTED
    assert not contacts_to(fake_telegram, alpha, SEEKER)
    assert not contacts_to(fake_telegram, alpha, PROVIDER)
    assert texts_to(fake_telegram, alpha, SEEKER)[-1].startswith("The other person decided not to connect")
    assert texts_to(fake_telegram, alpha, PROVIDER)[-1].startswith("Understood, I will not connect you.")


def test_a_rejection_before_any_acceptance_closes_the_match(alpha, fake_telegram):
    match = introduced_pair(alpha)

    press(alpha, PROVIDER, f"match:reject:{match.pk}")
    press(alpha, SEEKER, f"match:accept:{match.pk}")

    assert status_of(match) == Match.Status.REJECTED
    assert toasts(fake_telegram, alpha) == ["Declined", "This match is no longer open."]
    assert len(texts_to(fake_telegram, alpha, SEEKER)) == 1  # only the introduction


def test_a_strangers_press_changes_nothing(alpha, beta, fake_telegram):
    match = introduced_pair(alpha)
    active_profile(alpha, 3, Profile.Role.SEEKER, toward(0, 0.8, 3))

    press(alpha, 3, f"match:accept:{match.pk}")  # a user of the same bot with a profile
    press(alpha, 4, f"match:reject:{match.pk}")  # a user of the same bot without one
    press(beta, SEEKER, f"match:accept:{match.pk}")  # the same Telegram user, but in another tenant's bot
    press(alpha, SEEKER, "match:accept:999999")  # a match that does not exist answers alike

    assert status_of(match) == Match.Status.QUALIFIED
    assert toasts(fake_telegram, alpha) == ["This match is not yours."] * 3
    assert toasts(fake_telegram, beta) == ["Это предложение не для вас."]
    assert not texts_to(fake_telegram, alpha, 3)
    assert not texts_to(fake_telegram, alpha, 4)


def test_a_second_press_by_the_same_user_changes_nothing(alpha, fake_telegram):
    match = introduced_pair(alpha)

    press(alpha, SEEKER, f"match:accept:{match.pk}")
    press(alpha, SEEKER, f"match:accept:{match.pk}")
    press(alpha, SEEKER, f"match:reject:{match.pk}")

    assert status_of(match) == Match.Status.A_ACCEPTED
    assert toasts(fake_telegram, alpha) == ["Accepted", "You have already answered.", "You have already answered."]
    assert len(texts_to(fake_telegram, alpha, SEEKER)) == 2  # the introduction and one "thank you"
    assert len(texts_to(fake_telegram, alpha, PROVIDER)) == 1


def _press_concurrently(project, presses: list[tuple[int, str]]) -> list[BaseException]:
    start = threading.Barrier(len(presses))
    errors: list[BaseException] = []

    def one(chat_id: int, data: str) -> None:
        try:
            start.wait(10)
            press(project, chat_id, data)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)
        finally:
            connection.close()  # each thread has its own connection: close it before the test database goes

    threads = [threading.Thread(target=one, args=p) for p in presses]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_acceptances_connect_once(alpha, fake_telegram):
    match = introduced_pair(alpha)
    presses = [(SEEKER, f"match:accept:{match.pk}")] * 10 + [(PROVIDER, f"match:accept:{match.pk}")] * 10
    random.Random(7).shuffle(presses)

    assert _press_concurrently(alpha, presses) == []

    assert status_of(match) == Match.Status.CONNECTED
    assert len(contacts_to(fake_telegram, alpha, SEEKER)) == 1
    assert len(contacts_to(fake_telegram, alpha, PROVIDER)) == 1
    thanks = [t for c in (SEEKER, PROVIDER) for t in texts_to(fake_telegram, alpha, c) if t.startswith("Thank you!")]
    assert len(thanks) == 1  # exactly one press was the first acceptance
    assert len(fake_telegram.calls_to("answerCallbackQuery", token=alpha.bot_token)) == 20


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_twenty_concurrent_mixed_presses_end_in_one_consistent_state(alpha, fake_telegram, seed):
    match = introduced_pair(alpha)
    rng = random.Random(seed)
    presses = [(rng.choice([SEEKER, PROVIDER]), f"match:{rng.choice(['accept', 'reject'])}:{match.pk}")
               for _ in range(20)]  # fmt: skip

    assert _press_concurrently(alpha, presses) == []

    final = Match.objects.get(pk=match.pk)
    contacts = len(contacts_to(fake_telegram, alpha, SEEKER)) + len(contacts_to(fake_telegram, alpha, PROVIDER))
    rejections = sum(
        t.startswith("Understood, I will not connect you.")
        for c in (SEEKER, PROVIDER)
        for t in texts_to(fake_telegram, alpha, c)
    )
    if final.status == Match.Status.CONNECTED:
        assert (contacts, rejections) == (2, 0)
        assert final.a_contact_sent_at is not None
        assert final.b_contact_sent_at is not None
    else:
        assert final.status in (Match.Status.REJECTED, Match.Status.A_ACCEPTED, Match.Status.B_ACCEPTED)
        assert contacts == 0
        assert rejections == (1 if final.status == Match.Status.REJECTED else 0)
    assert Chat.objects.filter(project=alpha).count() == 2
