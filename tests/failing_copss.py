"""``copss run`` whose dispatcher fails with an unexpected error once the process gets
SIGUSR1 -- copss ending on an exception at a moment the test chooses. Run as a script by
``tests/test_console_terminal.py``; nothing imports it."""

from __future__ import annotations

import asyncio
import signal
import sys

from bot import cli, core, dispatch

_run_dispatcher = core.Hub.run_dispatcher
_dispatch_pending = dispatch.Dispatcher.dispatch_pending
failing = asyncio.Event()


async def run_dispatcher(self: core.Hub) -> None:
    """Dispatch as usual; SIGUSR1 wakes the dispatcher into the failure."""

    def fail() -> None:
        failing.set()
        self.dispatcher._inbox_ready.set()

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, fail)
    await _run_dispatcher(self)


async def dispatch_pending(self: dispatch.Dispatcher) -> int:
    """Fail (outside any transaction) once asked to."""
    if failing.is_set():
        raise RuntimeError("the dispatcher failed (simulated)")
    return await _dispatch_pending(self)


core.Hub.run_dispatcher = run_dispatcher  # type: ignore[method-assign]
dispatch.Dispatcher.dispatch_pending = dispatch_pending  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(cli.main(["run"]))
