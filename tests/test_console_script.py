"""The console is scriptable: the conversation README "Using it" shows, piped into a real
``copss run`` in one go, gives the replies README shows, with the numbers it shows."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from adapters.console.parse import Say, SwitchUser, parse_line

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
REPLY_LINE = re.compile(r"#(\d+) copss ↪#(\d+): (.*)")
MESSAGE_LINE = re.compile(r"#(\d+) (\S+?)(?: ↪#(\d+))?: (.*)")
NOTE_LINE = re.compile(r"\((you are now \S+|reacted .+ to #\d+|#\d+ (edited|deleted))\)")


@dataclass
class Shown:
    """A numbered message in the console's transcript."""

    number: int
    author: str
    reply_to: int | None
    text: str


def readme_conversation() -> tuple[list[str], list[Shown]]:
    """What README "Using it" shows: the lines typed after ``you>``, and every message of
    the conversation in order (copss's replies as README shows them, ``...`` included)."""
    section = README.read_text(encoding="utf-8").split("## Using it", 1)[1]
    block = re.search(r"```text\n(.*?)\n```", section, re.S)
    assert block is not None, "README 'Using it' lacks the console conversation"
    typed: list[str] = []
    shown: list[Shown] = []
    user = "you"
    for line in block.group(1).splitlines():
        if line.startswith("you> "):
            typed.append(line.removeprefix("you> "))
            match parse_line(typed[-1]):
                case SwitchUser(name=name):
                    user = name
                case Say(text=text, reply_to=reply_to):
                    shown.append(Shown(len(shown) + 1, user, reply_to, text))
                case other:
                    pytest.fail(f"README conversation line {line!r} is {other!r}")
            continue
        reply = REPLY_LINE.fullmatch(line)
        assert reply is not None, f"README conversation line {line!r} is neither typed nor copss"
        number, to, text = int(reply[1]), int(reply[2]), reply[3]
        # README numbers its messages as copss does: one after the other.
        assert number == len(shown) + 1, line
        shown.append(Shown(number, "copss", to, text))
    return typed, shown


def transcript(output: str) -> list[Shown]:
    """The numbered messages piped-input copss printed (a message's text may span lines)."""
    messages: list[Shown] = []
    current: Shown | None = None
    for line in output.splitlines():
        found = MESSAGE_LINE.fullmatch(line)
        if found is not None:
            to = int(found[3]) if found[3] else None
            current = Shown(int(found[1]), found[2], to, found[4])
            messages.append(current)
        elif NOTE_LINE.fullmatch(line):
            current = None
        else:
            assert current is not None, f"unexpected line {line!r} in {output}"
            current.text += "\n" + line
    return messages


def matches(shown: str, said: str) -> bool:
    """Whether ``said`` is what README shows, ``...`` standing for any text."""
    pattern = ".*".join(re.escape(part.strip()) for part in shown.split("..."))
    return re.fullmatch(pattern, said, re.S) is not None


def run_copss(home: Path, typed: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COPSS_")}
    env.update(COPSS_HOME=str(home), PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "run"],
        input="".join(line + "\n" for line in typed),
        capture_output=True,
        text=True,
        env=env,
        cwd=home,
        timeout=120,
    )


def test_readme_conversation_piped_in_gives_readme_replies(tmp_path: Path) -> None:
    typed, expected = readme_conversation()
    assert any(line.startswith("/as ") for line in typed)
    assert any(line.startswith("/reply ") for line in typed)
    done = run_copss(tmp_path, typed)
    assert done.returncode == 0, done.stderr
    got = transcript(done.stdout)
    # Every message numbered in the order of the conversation, the last line's reply
    # included (sent before copss exits at the end of its input).
    assert [m.number for m in got] == [m.number for m in expected], done.stdout
    for want, said in zip(expected, got, strict=True):
        assert (said.author, said.reply_to) == (want.author, want.reply_to), done.stdout
        if want.author == "copss":
            assert matches(want.text, said.text), (want.text, said.text)
        else:
            assert said.text == want.text


def test_matches_reads_the_ellipsis_as_any_text() -> None:
    assert matches("From the FAQ: “Q?” ...", "From the FAQ: “Q?”\nthe answer")
    assert matches("before: ... bob answered it on ...", "before: “Q?”\nbob answered it on 1 May")
    assert not matches("before: ... bob answered it on ...", "before: “Q?”\nann answered it")
