"""The Discord adapter on discord.py.

discord.py keeps the gateway alive (heartbeats, RESUME after a drop, rate-limit buckets). This
adapter hands its events to the hub in the order Discord sent them, answers slash commands
through their interactions, reads what was said while copss was away, and posts so that
nothing ever pings anyone. It only composes the parts that do so:

- :mod:`~adapters.discord.client`: discord.py's client, intents, login, event wiring;
- :mod:`~adapters.discord.intake`: events translated and fed in order, catching up;
- :mod:`~adapters.discord.commands`: slash commands and their interactions;
- :mod:`~adapters.discord.sending`: posting, split into chunks, retried where it stopped;
- :mod:`~adapters.discord.webhooks`: copss's webhook per channel for bridged copies;
- :mod:`~adapters.discord.copies`: what copss posted, for editing and deleting it;
- :mod:`~adapters.discord.permissions`: who counts as an admin;
- :mod:`~adapters.discord.translate`: Discord's objects to copss's events and back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import aiohttp
import discord

from adapters.base import Adapter, AdapterError, EventSink, Progress, TransientAdapterError
from adapters.discord import permissions
from adapters.discord.client import MESSAGE_CONTENT_HELP, copss_client, copss_intents
from adapters.discord.commands import SlashCommands
from adapters.discord.copies import PostedCopies
from adapters.discord.intake import Intake
from adapters.discord.sending import Sender
from adapters.discord.translate import PLATFORM
from adapters.discord.webhooks import Webhooks
from bot.events import ChannelRef, Outgoing

__all__ = ["DiscordAdapter", "copss_intents"]

#: What logging in or the first gateway connection raise when Discord cannot be reached:
#: no network, a refused or timed-out connection, Discord's servers failing (5xx).
UNREACHABLE = (
    OSError,
    aiohttp.ClientError,
    TimeoutError,
    discord.GatewayNotFound,
    discord.DiscordServerError,
)


def _cause(exc: BaseException) -> str:
    # aiohttp's connection errors say what they tried; a bare timeout says nothing.
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class _OneLineReconnects(logging.Filter):
    """discord.py logs each attempt to reconnect a lost gateway connection with a traceback;
    below debug level that becomes one line naming the cause."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if (
            exc is not None
            and str(record.msg).startswith("Attempting a reconnect")
            and not logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        ):
            record.msg = f"discord: gateway connection lost ({_cause(exc)}); {record.getMessage()}"
            record.args = None
            record.exc_info = record.exc_text = None
        return True


_ONE_LINE_RECONNECTS = _OneLineReconnects()


#: Seconds after a send began during which sending the same row again is safe: Discord
#: checks an enforced nonce against the bot's messages of "the past few minutes"; one minute
#: stays well inside that.
NONCE_WINDOW = 60.0


class DiscordAdapter(Adapter):
    """A Discord bot: text channels, threads, forum posts and DMs; slash and text commands.

    ``shard_count`` and ``shard_ids``: the gateway shards this process runs (see
    :func:`~adapters.discord.client.copss_client`). ``client_kwargs`` go to
    :class:`discord.Client` (e.g. ``max_ratelimit_timeout``).
    """

    platform = PLATFORM

    def __init__(
        self,
        token: str,
        *,
        commands: Sequence[tuple[str, str]] = (),
        command_prefix: str = "!",
        guild_ready_timeout: float = 2.0,
        shard_count: int | None = None,
        shard_ids: Sequence[int] = (),
        **client_kwargs: Any,
    ) -> None:
        self.commands = list(commands)
        self.command_prefix = command_prefix
        self.client = copss_client(
            self,
            shard_count=shard_count,
            shard_ids=shard_ids,
            guild_ready_timeout=guild_ready_timeout,
            **client_kwargs,
        )
        self.webhooks = Webhooks(self.client)
        self.intake = Intake(self.client, self.webhooks)
        self.slash = SlashCommands(self.client, self.intake, self.commands)
        self.copies = PostedCopies(self.client, self.webhooks)
        self.sender = Sender(self.client, self.slash, self.webhooks, self.copies)
        #: Set once the newest gateway session has read what was said while none listened.
        self.caught_up = self.intake.caught_up
        self._token = token
        self._closing = False
        # Added once, however many adapters: a logger keeps each filter once.
        logging.getLogger("discord.client").addFilter(_ONE_LINE_RECONNECTS)

    async def start(self, sink: EventSink) -> None:
        """Log in, register the slash commands, catch up, then relay events until closed.
        A refused token or intent raises :class:`AdapterError`; Discord out of reach (no
        network, an outage) raises :class:`TransientAdapterError`, and ``start`` may be called
        again."""
        if self._closing:
            return
        await self.client.reopen()
        intake = asyncio.create_task(self.intake.run(sink), name="discord:intake")
        try:
            await self.client.start(self._token)
        except discord.LoginFailure as exc:
            raise AdapterError("Discord refused the bot token (check COPSS_DISCORD_TOKEN)") from exc
        except discord.PrivilegedIntentsRequired as exc:
            raise AdapterError(MESSAGE_CONTENT_HELP) from exc
        except UNREACHABLE as exc:
            if self._closing:
                return
            raise TransientAdapterError(f"cannot reach Discord: {_cause(exc)}", 0.0) from exc
        finally:
            intake.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await intake
            if not self.client.is_closed():
                await self.client.close()

    async def close(self) -> None:
        """Disconnect; ``start`` returns soon after."""
        self._closing = True
        await self.client.close()

    def repeat_safe_for(self, as_name: str | None) -> float:
        """copss's own messages carry a nonce derived from the outbox row, which Discord
        enforces for a few minutes (it hands back the message it made instead of posting
        another); webhook executions (bridged copies, ``as_name``) take none."""
        return NONCE_WINDOW if as_name is None else 0.0

    async def send(self, message: Outgoing, progress: Progress | None = None) -> list[str]:
        """Post in the channel or thread (see :meth:`Sender.send`); every chunk's id."""
        return await self.sender.send(message, progress)

    async def edit(
        self,
        channel: ChannelRef,
        message_ids: Sequence[str],
        text: str,
        *,
        as_name: str | None = None,
        progress: Progress | None = None,
    ) -> list[str]:
        """Edit a message copss posted, keeping its head (see :meth:`PostedCopies.edit`)."""
        return await self.copies.edit(channel, message_ids, text, as_name, progress)

    async def delete(self, channel: ChannelRef, message_ids: Sequence[str]) -> None:
        """Delete a message with every chunk of it (see :meth:`PostedCopies.delete`)."""
        await self.copies.delete(channel, message_ids)

    async def is_admin(self, channel: ChannelRef, user_id: str) -> bool:
        """Whether Discord says, now, that the member administers the channel's server."""
        return await permissions.is_admin(self.client, channel, user_id)
