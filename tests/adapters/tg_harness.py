"""copss running on the real python-telegram-bot against the loopback fake Bot API."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adapters.base import Adapter
from adapters.telegram import TelegramAdapter, TelegramLimits
from bot.app import App
from bot.config import Config, StorageConfig
from storage.engine import Database, sqlite_url
from tests.adapters.app_runner import stop_app
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegramAPI

GROUP = -1001234567890
#: Test time runs this many times faster than Telegram's limits (1/s per chat, 20/min per
#: group, 30/s overall); the fake enforces the same scaled limits.
TIME_SCALE = 120.0


def scaled_limits(scale: float = TIME_SCALE) -> TelegramLimits:
    return TelegramLimits(
        per_chat_interval=1.0 / scale,
        group_per_window=20,
        group_window=60.0 / scale,
        overall_per_second=30.0 * scale,
    )


class TelegramHarness:
    """Starts and stops copss (as often as a test likes) on one store and one fake server."""

    def __init__(
        self,
        api: FakeTelegramAPI,
        tmp_path: Path,
        extra_adapters: Sequence[Adapter] = (),
        url: str | None = None,
        **adapter_kw: Any,
    ) -> None:
        self.api = api
        self.extra_adapters = list(extra_adapters)
        store = url or sqlite_url(tmp_path / "copss.db")
        self.config = Config(storage=StorageConfig(url=store))
        self.adapter_kw = adapter_kw
        self.app: App | None = None
        self.task: asyncio.Task[None] | None = None

    @property
    def db(self) -> Database:
        assert self.app is not None and self.app.db is not None
        return self.app.db

    async def start(self) -> None:
        """Start copss (polling) and wait until it polls."""
        await self._start()
        await self.api.wait_for_calls("getUpdates", within=5)

    async def start_webhook(self) -> None:
        """Start copss in webhook mode and wait until it registered the webhook."""
        await self._start()
        await self.api.wait_for_calls("setWebhook", within=5)

    async def _start(self) -> None:
        adapter = TelegramAdapter(
            DEFAULT_TOKEN,
            base_url=self.api.base_url,
            base_file_url=self.api.base_file_url,
            limits=self.adapter_kw.get("limits", scaled_limits()),
            commands=[("help", "what copss can do")],
            **{"poll_timeout": 1, **{k: v for k, v in self.adapter_kw.items() if k != "limits"}},
        )
        self.app = App(self.config, adapters=[adapter, *self.extra_adapters])
        await self.app.__aenter__()
        self.task = asyncio.create_task(self.app.run(handle_signals=False))
        await self.app.started.wait()

    async def settle(self, update_id: int | None = None) -> None:
        """Wait until ``update_id`` (default: every pushed update) is stored and handled."""
        if update_id is None:
            update_id = self.api._next_update_id - 1
        await self.api.wait_until_confirmed(update_id, within=10)
        assert self.app is not None and self.app.hub is not None
        async with asyncio.timeout(30):
            await self.app.hub.settled()

    async def push(self, update: dict[str, Any]) -> tuple[int, int]:
        """Push an update, wait for copss to handle it; returns (update_id, message_id)."""
        update_id = self.api.push_update(update)
        await self.settle(update_id)
        message = update.get("message") or update.get("edited_message") or {}
        return update_id, int(message.get("message_id", 0))

    async def stop(self, *, abrupt: bool = False) -> None:
        """Stop cleanly, or (``abrupt``) cancel everything mid-flight like a crash would."""
        if self.app is None or self.task is None:
            return
        await stop_app(self.app, self.task, abrupt=abrupt)
        self.app, self.task = None, None
