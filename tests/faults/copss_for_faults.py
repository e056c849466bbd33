"""``copss`` as the fault suite runs it in a subprocess. Run as a script with copss's own
arguments and ``PYTHONPATH`` the repository. On top of what ``tests/copss_for_tests.py``
sets (``COPSS_TEST_DISCORD``, ``COPSS_TEST_CONNECT_RETRY``):

- Telegram's posting limits scaled down 120 times, as the in-process harness scales them
  (``tests/adapters/tg_harness.py``), so that a bridged group takes copies as fast as the
  suite's members talk instead of 20 a minute; and discord.py's wait for more servers after
  connecting cut from 2 s to 0.05 s, as the in-process harnesses cut it;
- ``COPSS_FAULT_GO=1``: import copss's modules, then wait for a line on stdin, print
  ``started`` and run. A test that kills copss again and again starts the next process
  while the current one runs, so that the next copss starts soon after the kill instead of
  a second or two of imports later; nothing of copss runs before the line comes.
"""

from __future__ import annotations

import os
import sys

from adapters.discord import DiscordAdapter
from adapters.telegram.adapter import TelegramAdapter, TelegramLimits
from bot import cli
from tests.copss_for_tests import _apply_test_settings

#: tests.adapters.tg_harness.scaled_limits() (not imported: it loads the fakes).
SCALE = 120.0
LIMITS = TelegramLimits(
    per_chat_interval=1.0 / SCALE,
    group_per_window=20,
    group_window=60.0 / SCALE,
    overall_per_second=30.0 * SCALE,
)


def _wait_for_go() -> None:
    """Import what ``copss run`` imports as it starts, then wait for the go."""
    import alembic.command
    import telegram.ext

    import bot.app
    import bot.features.answers
    import storage.migrations

    del alembic, telegram, bot, storage  # imported for their time, not used here

    if not sys.stdin.readline():
        sys.exit(0)  # the test ended without needing this process
    print("started", flush=True)
    # copss itself reads nothing from stdin and writes nothing to stdout when it serves
    # platforms; nothing reads this process's stdout from here on.
    os.dup2(os.open(os.devnull, os.O_RDONLY), sys.stdin.fileno())
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


if __name__ == "__main__":
    _apply_test_settings()
    for init, name, value in (
        (TelegramAdapter.__init__, "limits", LIMITS),
        (DiscordAdapter.__init__, "guild_ready_timeout", 0.05),
    ):
        defaults = init.__kwdefaults__
        assert defaults is not None and name in defaults
        defaults[name] = value
    if os.environ.get("COPSS_FAULT_GO") == "1":
        _wait_for_go()
    sys.exit(cli.main(sys.argv[1:]))
