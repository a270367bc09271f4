"""The tally of the reliability scenarios (what crossed the wire), printed as a table at the end of a run.

A scenario appends its row to SCOREBOARD. In a parallel run the rows are recorded in the session that ran
the scenario; they travel to the controlling process with the test's report (`user_properties`), which
prints them (tests/conftest.py).
"""

from dataclasses import asdict, dataclass

import pytest

SCOREBOARD: list["Tally"] = []
USER_PROPERTY = "reliability_tally"


@dataclass(frozen=True)
class Tally:
    scenario: str
    messages_in: int
    replies_out: int
    lost: int
    duplicated: int
    note: str = ""


def scoreboard_rows_attach(report: pytest.TestReport, rows: list[Tally]) -> None:
    report.user_properties.extend((USER_PROPERTY, asdict(row)) for row in rows)


def scoreboard_rows_of(report: pytest.TestReport) -> list[Tally]:
    return [Tally(**value) for name, value in report.user_properties if name == USER_PROPERTY]


def scoreboard_write(terminalreporter: pytest.TerminalReporter, rows: list[Tally]) -> None:
    if not rows:
        return
    terminalreporter.section("reliability scenarios")
    terminalreporter.write_line("| scenario | messages in | replies out | lost | duplicated | note |")
    terminalreporter.write_line("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        terminalreporter.write_line(
            f"| {row.scenario} | {row.messages_in} | {row.replies_out} | {row.lost} | {row.duplicated} | {row.note} |"
        )
