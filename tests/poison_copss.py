"""``copss run`` with one more handler, first in line, that spins on the event loop when a
message says POISON -- what one long word used to do to the matcher. Run as a script by
``tests/test_poison_restart.py``; nothing imports it."""

from __future__ import annotations

import sys
from typing import Any

from bot import cli, core
from bot.events import Event, MessageEvent

_hub_init = core.Hub.__init__


async def spin(event: Event, ctx: core.Context) -> bool:
    """Never return (and never yield to the loop) on a poison message."""
    if isinstance(event, MessageEvent) and "POISON" in event.text:
        print("spinning on poison", file=sys.stderr, flush=True)
        while True:
            pass
    return False


def hub_init(self: core.Hub, db: Any, adapters: Any, handlers: Any, **kw: Any) -> None:
    _hub_init(self, db, adapters, [spin, *handlers], **kw)


core.Hub.__init__ = hub_init  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(cli.main(["run"]))
