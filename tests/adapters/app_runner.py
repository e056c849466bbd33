"""Stopping a copss App that a test harness started as a task."""

from __future__ import annotations

import asyncio
import contextlib

from bot.app import App


async def stop_app(app: App, task: asyncio.Task[None], *, abrupt: bool = False) -> None:
    """Stop cleanly, or (``abrupt``) cancel everything mid-flight like a crash would; then
    close the app's store and adapters."""
    if abrupt:
        task.cancel()
    else:
        app.stop()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 30)
    await app.__aexit__(None, None, None)
