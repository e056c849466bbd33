"""The README says what the code does."""

from __future__ import annotations

import re
from pathlib import Path

from bot.features.commands import reference_table

README = Path(__file__).parents[1] / "README.md"


def test_command_reference_matches_code() -> None:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- commands:start -->\n(.*?)\n<!-- commands:end -->", text, re.S)
    assert found is not None, "README lacks the command reference markers"
    assert found.group(1) == reference_table()


def test_two_setup_commands_and_ci_runs_the_test_one() -> None:
    text = README.read_text(encoding="utf-8")
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```sh\n(.*?)\n```", setup, re.S)
    assert len(commands) == 2
    run, test = commands
    assert run.endswith("copss run") and "pip install ." in run
    assert "pytest" in test
    ci = (Path(__file__).parents[1] / ".ci" / "run").read_text(encoding="utf-8")
    assert test in ci
