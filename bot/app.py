"""The application: storage, matching, adapters and the hub with an explicit lifecycle.

async with App(config) as app:
    await app.run()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from types import TracebackType

from sqlalchemy.exc import SQLAlchemyError

from adapters.base import Adapter, AdapterError, TransientAdapterError
from bot.config import Config
from bot.core import Hub
from bot.features.bridge import Bridge
from bot.features.commands import Services, build_commands
from bot.features.migration import migrate_chat
from bot.features.qa import QaFeature, record_suggestion_message
from bot.leadership import Leadership, TakesTurns
from bot.logs import register_secret
from bot.semantic_setup import Semantic, gate_of, start_semantic
from bot.store_setup import export_dir, prepare_store
from faq.matcher import LexicalMatcher, Matcher
from storage.engine import Database, _reason

log = logging.getLogger(__name__)

#: Seconds before trying again to start an adapter whose platform could not be reached; each
#: further failure in a row doubles the wait, up to ``CONNECT_RETRY_MAX``.
CONNECT_RETRY = 1.0
CONNECT_RETRY_MAX = 60.0


def build_adapters(config: Config, commands: Sequence[tuple[str, str]] = ()) -> list[Adapter]:
    """The adapters the configuration switches on; ``commands`` is the menu to announce."""
    adapters: list[Adapter] = []
    tg = config.telegram
    if tg.token is not None and config.serves("telegram"):
        from adapters.telegram import TelegramAdapter

        register_secret(tg.token.reveal())
        telegram = TelegramAdapter(
            tg.token.reveal(),
            base_url=tg.base_url,
            commands=commands,
            mode=tg.mode,
            webhook_url=tg.webhook_url,
            webhook_secret=tg.webhook_secret.reveal() if tg.webhook_secret else None,
            listen=tg.listen,
            port=tg.port,
        )
        # In webhook mode the adapter always has a secret (configured or made at start).
        register_secret(telegram.webhook_secret or "")
        adapters.append(telegram)
    dc = config.discord
    if dc.token is not None and config.serves("discord"):
        from adapters.discord import DiscordAdapter

        register_secret(dc.token.reveal())
        adapters.append(
            DiscordAdapter(
                dc.token.reveal(),
                commands=commands,
                command_prefix=dc.command_prefix,
                shard_count=dc.shard_count or None,
                shard_ids=dc.shard_ids,
            )
        )
    if config.console_enabled:
        from adapters.console import ConsoleAdapter

        adapters.append(ConsoleAdapter(config.console.user, terminal=True))
    return adapters


def take_turns(
    db: Database, adapters: Sequence[Adapter], on_lead: Callable[[], None] | None = None
) -> None:
    """Adapters that may receive in one process at a time (Telegram's getUpdates and webhook)
    receive only while this process leads among those on the PostgreSQL store ``db``;
    ``on_lead`` is called whenever this process comes to lead."""
    for adapter in adapters:
        if isinstance(adapter, TakesTurns):
            leadership = Leadership(db, f"{adapter.platform} receiver", on_lead=on_lead)
            adapter.receive_turn = leadership.run


class App:
    """copss as one process: open with ``async with``, then ``await run()``."""

    def __init__(self, config: Config, adapters: Sequence[Adapter] | None = None) -> None:
        self.config = config
        self._adapters = list(adapters) if adapters is not None else None
        self.db: Database | None = None
        self.hub: Hub | None = None
        #: The model and vector index when semantic matching runs (None: words only).
        self.semantic: Semantic | None = None
        #: Set once the start-up embedding job has embedded everything the store held.
        self.embedded = asyncio.Event()
        self._stop = asyncio.Event()
        # The first adapter that could not start for good (refused token or intent).
        self._refused: AdapterError | None = None
        #: Set once every adapter has been handed the hub's sink.
        self.started = asyncio.Event()

    async def __aenter__(self) -> App:
        self.db = await prepare_store(self.config, writable=True)
        self.semantic = await start_semantic(self.config, self.db)
        gate = gate_of(self.config, self.semantic is not None)
        matcher: Matcher = self.semantic.matcher() if self.semantic else LexicalMatcher()
        bridge = Bridge()
        commands = build_commands(
            Services(matcher, gate, export_dir(self.config), self.config.report.official_domains)
        )
        adapters = (
            self._adapters
            if self._adapters is not None
            else build_adapters(self.config, commands.menu())
        )
        self.hub = Hub(
            self.db,
            adapters,
            [migrate_chat, commands, bridge, QaFeature(matcher, gate)],
            admins=self.config.admins,
            sent_hooks=[record_suggestion_message, bridge.record_copy],
            prepare_hooks=[bridge.resolve_reply],
        )
        if self.db.dialect == "postgresql":
            # A process taking over from a receiver that died also takes over the events that
            # one stored and had not handled: its dispatcher looks at the inbox then.
            take_turns(self.db, adapters, on_lead=self.hub.dispatcher.wake)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.hub is not None:
            for adapter in self.hub.adapters.values():
                with contextlib.suppress(Exception):
                    await adapter.close()
        if self.db is not None:
            await self.db.close()

    def stop(self) -> None:
        """Ask :meth:`run` to finish."""
        self._stop.set()

    async def run(self, *, handle_signals: bool = True) -> None:
        """Run adapters, dispatcher and senders until stopped (SIGINT/SIGTERM, console EOF)."""
        hub = self.hub
        if hub is None:
            raise RuntimeError("use 'async with App(config) as app' before run()")
        if not hub.adapters:
            raise RuntimeError("no adapter is configured")
        loop = asyncio.get_running_loop()
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self.stop)
        try:
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(hub.run_dispatcher(), name="dispatcher")]
                if self.semantic is not None:
                    # Loads the vector index (matching on words meanwhile), then embeds what
                    # the store holds without an embedding (the starter entries at first
                    # start, everything after a model change or an import).
                    tasks.append(tg.create_task(self._backfill(self.semantic), name="embeddings"))
                for platform in hub.adapters:
                    tasks.append(tg.create_task(hub.run_sender(platform), name=f"send:{platform}"))
                for platform, adapter in hub.adapters.items():
                    tasks.append(
                        tg.create_task(self._run_adapter(adapter), name=f"adapter:{platform}")
                    )
                await asyncio.sleep(0)  # let each adapter task reach start()
                self.started.set()
                await self._stop.wait()
                await self._settle(hub)
                for adapter in hub.adapters.values():
                    await adapter.close()
                for task in tasks:
                    task.cancel()
            if self._refused is not None:
                raise self._refused
        except BaseExceptionGroup as group:
            # An adapter that cannot start (bad token, missing intent) ends copss with its own
            # message rather than a task-group traceback.
            refused = group.subgroup(AdapterError)
            if refused is not None:
                raise refused.exceptions[0] from group
            raise
        finally:
            if handle_signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)

    async def _backfill(self, semantic: Semantic) -> None:
        assert self.hub is not None
        try:
            await semantic.load(self.hub.db)
            await semantic.backfill(self.hub.db).run()
            self.embedded.set()
        except SQLAlchemyError as exc:
            # The store failing is reported by the dispatcher; the next start resumes here.
            log.warning("embedding stopped: %s", _reason(exc))

    async def _run_adapter(self, adapter: Adapter) -> None:
        hub = self.hub
        assert hub is not None
        delay = CONNECT_RETRY
        try:
            while True:
                try:
                    await adapter.start(hub.sink)
                    return
                except TransientAdapterError as exc:
                    # The platform cannot be reached (no network, an outage): one line per
                    # attempt (the traceback only at debug level) and try again later, longer
                    # each time, while the other platforms and the hub go on. A refused token
                    # is an AdapterError and ends copss (see run).
                    if self._stop.is_set():
                        return
                    wait = max(delay, exc.retry_after)
                    log.warning(
                        "%s; retrying in %gs", exc, wait, exc_info=log.isEnabledFor(logging.DEBUG)
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), wait)
                    if self._stop.is_set():
                        return
                    delay = min(delay * 2, CONNECT_RETRY_MAX)
        except AdapterError as exc:
            # Refused for good: copss ends with this message (see run), once the hub has come
            # to rest, rather than with the dispatcher and senders cancelled mid-transaction.
            self._refused = self._refused or exc
        finally:
            # An adapter that ends by itself (console EOF, /quit) ends the process.
            self.stop()

    async def _settle(self, hub: Hub, timeout: float = 5.0) -> None:
        # Let the last event be handled and its reply sent before closing (bounded wait).
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await hub.settled()
