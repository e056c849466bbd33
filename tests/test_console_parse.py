"""Parsing what a person types into the console."""

from __future__ import annotations

import pytest

from adapters.console.parse import (
    Command,
    Delete,
    Edit,
    Problem,
    Quit,
    React,
    Say,
    SwitchUser,
    parse_line,
)


@pytest.mark.parametrize(
    ("line", "action"),
    [
        ("", None),
        ("   ", None),
        ("hello there", Say("hello there")),
        ("/as alice", SwitchUser("alice")),
        ("/reply 3 use the gemeente site", Say("use the gemeente site", reply_to=3)),
        ("/reply #3 /solved", Command("solved", "", reply_to=3)),
        ("/react 2 ✅", React(2, "✅")),
        ("/edit 4 new text", Edit(4, "new text")),
        ("/delete 4", Delete(4)),
        ("/quit", Quit()),
        ("/ask how do I get a BSN", Command("ask", "how do I get a BSN")),
        ("/HELP", Command("help", "")),
    ],
)
def test_parse(line: str, action: object) -> None:
    assert parse_line(line) == action


@pytest.mark.parametrize("line", ["/as", "/reply x hi", "/react 2", "/edit", "/"])
def test_problems_explain_usage(line: str) -> None:
    result = parse_line(line)
    assert isinstance(result, Problem)
    assert "usage" in result.message or "command name" in result.message
