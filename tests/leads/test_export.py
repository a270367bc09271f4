import csv
import io

import pytest
from django.urls import reverse

from bots.models import Chat
from leads.export import csv_cell, leads_write_csv
from leads.models import Lead
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("value", "cell"),
    [("=HYPERLINK(\"http://evil\")", "'=HYPERLINK(\"http://evil\")"), ("+7 999 123-45-67", "'+7 999 123-45-67"),
     ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("Anna", "Anna"), (None, ""), (42, "42")],
)  # fmt: skip
def test_a_cell_that_a_spreadsheet_would_run_as_a_formula_is_quoted(value, cell):
    assert csv_cell(value) == cell


def test_the_operators_export_carries_every_lead_with_formulas_defused(client, project_a):
    chat = Chat.objects.create(project=project_a, telegram_chat_id=111)
    lead = Lead.objects.create(project=project_a, chat=chat, name='=HYPERLINK("http://evil","click")',
                               city="Berlin", summary="Wants windows cleaned")  # fmt: skip
    client.force_login(MembershipFactory(project=project_a).user)

    export = client.post(
        reverse("admin:leads_lead_changelist"), {"action": "export_csv", "_selected_action": [lead.pk]}
    )

    assert export["Content-Type"].startswith("text/csv")
    header, row = list(csv.reader(io.StringIO(export.content.decode())))
    record = dict(zip(header, row, strict=True))
    assert record["id"] == str(lead.pk)
    assert record["project"] == "alpha"
    assert record["name"] == '\'=HYPERLINK("http://evil","click")'
    assert record["city"] == "Berlin"


def test_writing_to_any_text_stream(project_a):
    chat = Chat.objects.create(project=project_a, telegram_chat_id=112)
    Lead.objects.create(project=project_a, chat=chat, name="Bob", contact="-rf")
    stream = io.StringIO()
    leads_write_csv(leads=Lead.objects.select_related("project"), stream=stream)
    rows = list(csv.reader(io.StringIO(stream.getvalue())))
    assert rows[1][rows[0].index("contact")] == "'-rf"
