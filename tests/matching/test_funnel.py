"""The matching funnel, counted from known rows; every tenant counts only its own."""

from datetime import timedelta

import pytest

from matching.funnel import duration_text, matching_funnel
from tests.matching.funnel_rows import EXPECTED, funnel_rows

pytestmark = pytest.mark.django_db


def test_the_funnel_counts_the_rows(alpha, beta):
    funnel_rows(alpha)
    funnel_rows(beta, base=100)
    funnel_rows(beta, base=200)  # the other tenant has twice as much: none of it may leak into alpha's counts

    funnel = matching_funnel(project=alpha)

    assert {stage: count for stage, _, count in funnel.stages} == EXPECTED
    assert funnel.first_introduction_median == timedelta(hours=2)
    assert funnel.first_introduction_max == pytest.approx(timedelta(hours=4), abs=timedelta(seconds=1))
    assert [(r.round, r.users, r.introduced) for r in funnel.rounds] == [(1, 5, 4), (2, 4, 2)]
    assert funnel.rounds[0].share == 0.8
    assert {stage: count for stage, _, count in matching_funnel(project=beta).stages} == {
        stage: 2 * count for stage, count in EXPECTED.items()
    }


def test_an_empty_project_has_an_empty_funnel(alpha):
    funnel = matching_funnel(project=alpha)
    assert all(count == 0 for _, _, count in funnel.stages)
    assert funnel.first_introduction_median is None
    assert funnel.rounds == []


def test_durations_read_like_people_say_them():
    assert [duration_text(timedelta(seconds=s)) for s in (45, 720, 11_100, 187_200)] == [
        "45 s", "12 min", "3 h 5 min", "2 d 4 h",
    ]  # fmt: skip
    assert duration_text(None) == "–"
