"""``copss run`` on a real (pseudo-)terminal gives the terminal back as it found it.

Line editing puts the terminal in a raw mode (no echo, no line buffering) while a line is read;
however copss ends -- /quit, Ctrl-D, Ctrl-C, SIGTERM, an unexpected error -- the shell that
started it must get its echo and line mode back, on a fresh line.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux pseudo-terminals"),
]

REPO = Path(__file__).resolve().parent.parent
PROMPT = b"you> "


def _take_terminal() -> None:
    # In the child, after setsid: the pseudo-terminal becomes its controlling terminal, so
    # Ctrl-C typed on it sends SIGINT as a real terminal does.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """A copss process whose stdin and stdout are a pseudo-terminal this test types on."""

    def __init__(self, home: Path, *, failing: bool = False) -> None:
        self.master, self.slave = os.openpty()
        #: The terminal's attributes before copss started.
        self.before = termios.tcgetattr(self.slave)
        env = {k: v for k, v in os.environ.items() if not k.startswith("COPSS_")}
        env.update(COPSS_HOME=str(home), TERM="xterm", PYTHONPATH=str(REPO))
        script = [str(REPO / "tests" / "failing_copss.py")] if failing else ["-m", "bot.cli", "run"]
        self.log = home / "stderr.txt"
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, *script],
                stdin=self.slave,
                stdout=self.slave,
                stderr=err,
                env=env,
                cwd=home,
                start_new_session=True,
                preexec_fn=_take_terminal,
            )
        self.output = b""
        self._seen = 0

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return False
        try:
            data = os.read(self.master, 4096)
        except OSError:
            return False
        self.output += data
        return bool(data)

    def expect(self, needle: bytes, timeout: float = 30) -> None:
        """Read the screen until ``needle`` shows after the previous one expected."""
        deadline = timeout
        while (found := self.output.find(needle, self._seen)) < 0:
            assert deadline > 0, f"{needle!r} not shown; screen: {self.output!r}"
            self._read(0.1)
            deadline -= 0.1
        self._seen = found + len(needle)

    def type(self, keys: bytes) -> None:
        """Press keys (Enter is ``\\r``, as a terminal sends it)."""
        os.write(self.master, keys)

    def lflag(self) -> int:
        """The terminal's local modes now."""
        return int(termios.tcgetattr(self.slave)[3])

    def finish(self, timeout: float = 30) -> int:
        """Wait for copss to exit and read the rest of what it printed."""
        code = self.proc.wait(timeout)
        while self._read(0.2):
            pass
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(tmp_path)
    yield term
    term.close()


def assert_terminal_restored(term: Terminal) -> None:
    after = termios.tcgetattr(term.slave)
    assert after[3] & termios.ECHO and after[3] & termios.ICANON
    assert after == term.before
    # The shell's prompt starts on a line of its own.
    assert term.output.endswith(b"\n"), term.output[-80:]


def start_typing(term: Terminal) -> None:
    term.expect(PROMPT)
    term.type(b"hello everyone\r")
    term.expect(b"(#1)")
    term.expect(PROMPT)
    # Line editing has the terminal while copss waits at its prompt.
    assert not term.lflag() & termios.ICANON


def test_quit_gives_the_terminal_back(terminal: Terminal) -> None:
    start_typing(terminal)
    terminal.type(b"/quit\r")
    assert terminal.finish() == 0
    assert_terminal_restored(terminal)
    # Nothing after /quit: no new prompt for the shell's prompt to land on.
    assert not terminal.output.rstrip().endswith(PROMPT.rstrip())


def test_ctrl_d_gives_the_terminal_back(terminal: Terminal) -> None:
    start_typing(terminal)
    terminal.type(b"\x04")
    assert terminal.finish() == 0
    assert_terminal_restored(terminal)


def test_ctrl_c_gives_the_terminal_back(terminal: Terminal) -> None:
    start_typing(terminal)
    terminal.type(b"half a line\x03")
    assert terminal.finish() == 0
    assert_terminal_restored(terminal)


def test_sigterm_gives_the_terminal_back(terminal: Terminal) -> None:
    start_typing(terminal)
    terminal.type(b"half a line")
    terminal.expect(b"half a line")
    terminal.proc.send_signal(signal.SIGTERM)
    assert terminal.finish() == 0
    assert_terminal_restored(terminal)


def test_an_unexpected_error_gives_the_terminal_back(tmp_path: Path) -> None:
    term = Terminal(tmp_path, failing=True)
    try:
        start_typing(term)
        term.proc.send_signal(signal.SIGUSR1)
        assert term.finish() == 1
        assert "the dispatcher failed (simulated)" in term.log.read_text()
        assert_terminal_restored(term)
    finally:
        term.close()
