"""The matching funnel on the project dashboard, in a real browser: the counts are the rows'."""

import pytest

from tenants.models import Membership
from tests.console.browser import chromium, log_in, page, screenshot
from tests.factories import MembershipFactory
from tests.matching.funnel_rows import EXPECTED, funnel_rows

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
__all__ = ["chromium", "page"]  # fixtures of the browser tests


def test_the_dashboard_shows_the_projects_funnel(page, alpha, beta):
    funnel_rows(alpha)
    funnel_rows(beta, base=100)
    funnel_rows(beta, base=200)
    MembershipFactory(project=alpha, role=Membership.Role.OPERATOR, user__username="olga")

    log_in(page, "olga")
    page.goto(f"/admin/tenants/project/{alpha.pk}/dashboard/")
    page.wait_for_selector("#matching-funnel")

    shown = {stage: int(page.inner_text(f"#funnel-{stage}")) for stage in EXPECTED}
    assert shown == EXPECTED
    assert "median 2 h 0 min, longest 4 h 0 min" in page.inner_text("#funnel-first-introduction")
    rows = page.inner_text("#funnel-rounds")
    assert "80%" in rows
    assert "50%" in rows
    screenshot(page, "matching-funnel.png")
