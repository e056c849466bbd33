"""The Telegram adapter on python-telegram-bot.

Updates are fetched with our own long-poll loop (or received on a webhook) rather than PTB's
``Updater``, because the Updater confirms an update to Telegram as soon as it has fetched it:
copss confirms an update (advances the offset, or answers the webhook 200) only after the hub
has stored every event it carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import httpx
from telegram import BotCommand, ReplyParameters, Update
from telegram.constants import MessageLimit, ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.ext import AIORateLimiter, ExtBot
from telegram.request import HTTPXRequest

from adapters.base import (
    Adapter,
    AdapterError,
    EventSink,
    Pacing,
    Progress,
    SinkUnavailable,
    TransientAdapterError,
    UncertainSendError,
)
from adapters.telegram.translate import update_events
from adapters.text import Piece, outgoing_name, outgoing_text, split_pieces
from bot.events import ChannelRef, Event, MigrateEvent, Outgoing

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ("message", "edited_message", "message_reaction", "chat_member")
#: What Telegram allows as a webhook's secret_token.
SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ADMIN_STATUSES = frozenset({"creator", "administrator"})
#: Seconds a send may take to be answered. Telegram has no idempotency key, so a send that
#: times out after the request went out cannot be told apart from one that arrived: waiting
#: long makes that rare (PTB's default read timeout is 5 s, and a busy Bot API server answers
#: later than that now and then). Nothing retries a send by itself: not PTB (its HTTPXRequest
#: never retries, and the rate limiter runs with ``max_retries=0``), only the outbox, by policy.
SEND_TIMEOUT = 60.0
#: Errors of httpx that come before any byte of the request went out: the send surely did
#: not arrive and may be made again.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class TelegramLimits:
    """Telegram's posting limits: about one message a second per chat, 20 a minute per group,
    30 a second overall. Tests scale these down together with the fake server's."""

    per_chat_interval: float = 1.0
    group_per_window: int = 20
    group_window: float = 60.0
    overall_per_second: float = 30.0

    def pacing(self) -> Pacing:
        """The outbox pacing for these limits (group windows for negative chat ids)."""
        return Pacing(
            per_chat_interval=self.per_chat_interval,
            per_chat_window=(self.group_per_window, self.group_window),
            overall_per_second=self.overall_per_second,
            window_applies=lambda chat_id: chat_id.startswith("-"),
        )


def _html_length(text: str) -> int:
    # Telegram counts UTF-16 code units of the text after parsing entities; measuring the
    # escaped text instead only counts more (never less), so every chunk fits either way.
    return len(html.escape(text, quote=False).encode("utf-16-le")) // 2


#: A 502 or 504, as PTB words them: Telegram's description ("Bad Gateway"), else the status.
_GATEWAY_ERROR = re.compile(r"bad gateway|gateway time-?out|\((502|504)\)$", re.IGNORECASE)


def _maybe_arrived(exc: NetworkError) -> bool:
    """Whether the request may have reached Telegram: the connection was made and no answer
    came (a read or write timeout, the connection dropped mid-request), or the proxy in front
    of the Bot API answered that the API did not answer it in time (502 Bad Gateway, 504
    Gateway Timeout: the API may have carried it out meanwhile). Other server errors are the
    API's own answer that it did not."""
    cause = exc.__cause__
    if cause is None:
        # An HTTP error status, worded by Telegram's answer or PTB.
        return bool(_GATEWAY_ERROR.search(exc.message))
    return not isinstance(cause, _NOT_SENT)


def _seconds(value: int | float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class TelegramAdapter(Adapter):
    """A Telegram bot in polling (default) or webhook mode."""

    platform = "telegram"

    def __init__(
        self,
        token: str,
        *,
        base_url: str = "https://api.telegram.org/bot",
        base_file_url: str = "https://api.telegram.org/file/bot",
        limits: TelegramLimits | None = None,
        poll_timeout: int = 30,
        commands: Sequence[tuple[str, str]] = (),
        mode: str = "polling",
        webhook_url: str = "",
        webhook_secret: str | None = None,
        listen: str = "127.0.0.1",
        port: int = 8443,
        send_timeout: float = SEND_TIMEOUT,
    ) -> None:
        if webhook_secret is not None and not SECRET_TOKEN.fullmatch(webhook_secret):
            raise ValueError("webhook_secret must be 1-256 characters of A-Z, a-z, 0-9, _ and -")
        if mode == "webhook" and not webhook_secret:
            # Without a secret anyone who finds the address can post forged updates (say, as
            # an anonymous admin), so webhook mode always has one: 256 bits, made here when
            # not configured and registered with setWebhook at start. bot.app masks it in
            # logs, as PTB logs request parameters at DEBUG.
            webhook_secret = secrets.token_urlsafe(32)
        self.limits = limits or TelegramLimits()
        self.pacing = self.limits.pacing()
        self.poll_timeout = poll_timeout
        self.commands = list(commands)
        self.mode = mode
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.listen, self.port = listen, port
        #: Read and write timeout of every send, edit and delete (see :data:`SEND_TIMEOUT`).
        self.send_timeout = send_timeout
        self.bot = ExtBot(
            token,
            base_url=base_url,
            base_file_url=base_file_url,
            request=HTTPXRequest(connection_pool_size=8),
            get_updates_request=HTTPXRequest(read_timeout=poll_timeout + 10.0),
            rate_limiter=AIORateLimiter(
                overall_max_rate=self.limits.overall_per_second,
                group_max_rate=self.limits.group_per_window,
                group_time_period=self.limits.group_window,
                max_retries=0,
            ),
        )
        #: Runs the receiving (the getUpdates loop, or the webhook server) when this process
        #: may receive, returning when it ends; None: receive at once. Several processes on
        #: one store poll one at a time (Telegram ends a getUpdates when another one with the
        #: same token comes in, 409 Conflict): bot.app hands in a store-wide leadership.
        self.receive_turn: Callable[[Callable[[], Awaitable[None]]], Awaitable[None]] | None = None
        self.username = ""
        self._closed = asyncio.Event()
        self._offset: int | None = None
        self._migrated: dict[str, str] = {}

    # -- receiving ------------------------------------------------------------------------------

    async def start(self, sink: EventSink) -> None:
        """Log in, announce the commands, then receive updates until closed. A refused token
        raises :class:`AdapterError`; Telegram out of reach (no network, a timeout, a server
        error) raises :class:`TransientAdapterError`, and ``start`` may be called again."""
        try:
            await self.bot.initialize()
        except InvalidToken as exc:
            raise AdapterError(
                "Telegram refused the bot token (check COPSS_TELEGRAM_TOKEN)"
            ) from exc
        except RetryAfter as exc:
            raise TransientAdapterError(
                "Telegram asks copss to wait before logging in", _seconds(exc.retry_after)
            ) from exc
        except NetworkError as exc:
            raise TransientAdapterError(f"cannot reach Telegram: {exc.message}", 0.0) from exc
        self.username = self.bot.username
        log.info("telegram: logged in as @%s", self.username)
        if self.commands:
            with contextlib.suppress(TelegramError):
                await self.bot.set_my_commands([BotCommand(n, d) for n, d in self.commands])

        async def receive() -> None:
            if self.mode == "webhook":
                await self._run_webhook(sink)
            else:
                await self.bot.delete_webhook()
                await self._poll(sink)

        try:
            # Sending works from here on, also while another process has the turn to receive.
            await (receive() if self.receive_turn is None else self.receive_turn(receive))
        except NetworkError as exc:
            # Lost between logging in and receiving (deleteWebhook, setWebhook); once
            # polling, _poll retries by itself.
            raise TransientAdapterError(f"cannot reach Telegram: {exc.message}", 0.0) from exc
        finally:
            with contextlib.suppress(Exception):
                await self.bot.shutdown()

    async def _poll(self, sink: EventSink) -> None:
        backoff = 1.0
        while not self._closed.is_set():
            try:
                updates = await self.bot.get_updates(
                    offset=self._offset,
                    timeout=self.poll_timeout,
                    allowed_updates=list(ALLOWED_UPDATES),
                )
            except RetryAfter as exc:
                await self._sleep(_seconds(exc.retry_after))
                continue
            except (NetworkError, TelegramError) as exc:
                if self._closed.is_set():
                    return
                log.warning("telegram: getUpdates failed (%s); retrying in %.0fs", exc, backoff)
                await self._sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 1.0
            await self._take(updates, sink)

    async def _take(self, updates: Sequence[Update], sink: EventSink) -> None:
        """Hand a getUpdates batch to the hub all at once (stored together, in order) and
        move the offset past the updates stored, up to the first one that was not."""
        events = [(update, event) for update in updates for event in self._events(update)]
        # One gather: its tasks start in this order and each queues its event before it
        # first waits, so the events are stored in the order they came.
        results = await asyncio.gather(*(sink(e) for _, e in events), return_exceptions=True)
        failed: dict[int, BaseException] = {}
        for (update, _), result in zip(events, results, strict=True):
            if isinstance(result, BaseException):
                failed.setdefault(update.update_id, result)
        for update in updates:
            problem = failed.get(update.update_id)
            if isinstance(problem, SinkUnavailable):
                # Not stored: the offset stays, so Telegram keeps this update (and those
                # after it) and the next getUpdates (after the wait) returns it again.
                log.error(
                    "telegram: update %d not stored (%s); not confirming it, retrying in %gs",
                    update.update_id,
                    problem,
                    problem.retry_after,
                )
                await self._sleep(problem.retry_after)
                return
            if problem is not None:
                raise problem
            # Only now may the next getUpdates confirm this update to Telegram.
            self._offset = update.update_id + 1

    def _events(self, update: Update) -> list[Event]:
        events = list(update_events(update, self.username))
        for event in events:
            if isinstance(event, MigrateEvent):
                self._migrated[event.channel.chat_id] = event.new_chat_id
        return events

    async def handle_update(self, update: Update, sink: EventSink) -> None:
        """Translate one update and hand its events to the hub (returns once stored)."""
        for event in self._events(update):
            await sink(event)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closed.wait(), seconds)

    async def _run_webhook(self, sink: EventSink) -> None:
        from aiohttp import web

        secret = self.webhook_secret
        assert secret, "webhook mode always has a secret (see __init__)"
        expected = secret.encode()

        async def receive(request: web.Request) -> web.Response:
            # Checked before the body is read: a forged update is never parsed, let alone
            # stored. Constant-time, so the secret cannot be guessed byte by byte.
            given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
            if not hmac.compare_digest(given, expected):
                return web.Response(status=403)
            try:
                data = await request.json()
                update = Update.de_json(data, self.bot)
            except (ValueError, TypeError, KeyError):
                return web.Response(status=400)
            # Answering 200 confirms the update; Telegram retries anything else.
            try:
                await self.handle_update(update, sink)
            except SinkUnavailable as exc:
                log.error(
                    "telegram: update %d not stored (%s); answering 503", update.update_id, exc
                )
                return web.Response(status=503)
            return web.Response(status=200)

        app = web.Application()
        path = "/" + self.webhook_url.split("://", 1)[-1].partition("/")[2]
        app.router.add_post(path, receive)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.listen, self.port)
        await site.start()
        try:
            await self.bot.set_webhook(
                self.webhook_url,
                secret_token=secret,
                allowed_updates=list(ALLOWED_UPDATES),
            )
            await self._closed.wait()
        finally:
            await runner.cleanup()

    # -- sending --------------------------------------------------------------------------------

    def _chat(self, chat_id: str) -> str:
        return self._migrated.get(chat_id, chat_id)

    @staticmethod
    def _head(name: str) -> str:
        # A bridged copy names its author in bold before the text of its first chunk.
        return f"<b>{html.escape(name, quote=False)}</b>: " if name else ""

    @staticmethod
    def _split(
        text: str, name: str, *, headed: bool, start: int = 0, carry: str = ""
    ) -> list[Piece]:
        # Chunks of at most 4096; the first leaves room for the author's name when it has it.
        limit = MessageLimit.MAX_TEXT_LENGTH
        first = limit - _html_length(f"{name}: ") if name and headed else None
        return split_pieces(
            text, limit, measure=_html_length, first_limit=first, start=start, carry=carry
        )

    async def send(self, message: Outgoing, progress: Progress | None = None) -> list[str]:
        """Post as HTML-escaped text in the right topic, as a reply; text beyond 4096 goes on
        in further messages, each a reply to the first. Goes on after the chunks ``progress``
        says were posted already; returns every chunk's id."""
        progress = progress if progress is not None else Progress()
        name = outgoing_name(message.as_name) if message.as_name else ""
        head = self._head(name)
        pieces = self._split(
            outgoing_text(message.text),
            name,
            headed=not progress.ids,
            start=progress.done if progress.ids else 0,
            carry=progress.carry if progress.ids else "",
        )
        for number, piece in enumerate(pieces, 1):
            first = not progress.ids
            reply = message.reply_to if first else progress.ids[0]
            sent = await self._send_chunk(message.channel, piece.text, reply, head if first else "")
            await progress.posted(sent, piece.end, piece.carry, more=number < len(pieces))
        return list(progress.ids)

    async def _send_chunk(
        self, channel: ChannelRef, text: str, reply_to: str | None, head: str = ""
    ) -> str:
        reply = (
            ReplyParameters(int(reply_to), allow_sending_without_reply=True)
            if reply_to and reply_to.lstrip("-").isdigit()
            else None
        )
        thread = int(channel.thread_id) if channel.thread_id else None
        chat = self._chat(channel.chat_id)
        for _ in range(2):
            try:
                sent = await self.bot.send_message(
                    chat,
                    head + html.escape(text, quote=False),
                    parse_mode=ParseMode.HTML,
                    reply_parameters=reply,
                    message_thread_id=thread,
                    disable_web_page_preview=False,
                    read_timeout=self.send_timeout,
                    write_timeout=self.send_timeout,
                )
                return str(sent.message_id)
            except ChatMigrated as exc:
                chat = str(exc.new_chat_id)
                self._migrated[channel.chat_id] = chat
                reply = None  # the old message ids do not exist in the new chat
            except Exception as exc:
                raise self._map_error(exc, sending=True) from exc
        raise AdapterError(f"chat {channel.chat_id} keeps migrating")

    def _map_error(self, exc: Exception, *, sending: bool = False) -> Exception:
        if isinstance(exc, RetryAfter):
            return TransientAdapterError("telegram flood control", _seconds(exc.retry_after))
        if isinstance(exc, Forbidden | BadRequest | InvalidToken):
            return AdapterError(f"telegram refused: {exc.message}")
        if isinstance(exc, NetworkError):
            if sending and _maybe_arrived(exc):
                return UncertainSendError(f"telegram did not answer: {exc.message}", 1.0)
            # No wait of Telegram's own: the outbox backs off (exponentially, with jitter).
            return TransientAdapterError(f"telegram unreachable: {exc.message}", 0.0)
        return exc

    async def edit(
        self,
        channel: ChannelRef,
        message_ids: Sequence[str],
        text: str,
        *,
        as_name: str | None = None,
        progress: Progress | None = None,
    ) -> list[str]:
        """Edit a message the bot sent in chunks ``message_ids``: the new text is split again,
        chunks are edited in place, chunks no longer needed deleted, and extra chunks posted
        (as replies to the first) when the text grew; returns the chunks it has now."""
        ids = list(message_ids)
        if not ids:
            raise AdapterError("telegram: no message to edit")
        name = outgoing_name(as_name) if as_name else ""
        head = self._head(name)
        pieces = self._split(outgoing_text(text), name, headed=True)
        for index, piece in enumerate(pieces):
            if index < len(ids):
                body = (head if index == 0 else "") + html.escape(piece.text, quote=False)
                await self._edit_chunk(channel, ids[index], body)
                continue
            ids.append(await self._send_chunk(channel, piece.text, ids[0]))
            if progress is not None:
                await progress.changed(ids)  # so a retry edits this chunk, never posts it again
        kept, leftover = ids[: len(pieces)], ids[len(pieces) :]
        for message_id in leftover:
            await self._delete_chunk(channel, message_id)
        if leftover and progress is not None:
            await progress.changed(kept)
        return kept

    async def _edit_chunk(self, channel: ChannelRef, message_id: str, body: str) -> None:
        try:
            await self.bot.edit_message_text(
                body,
                chat_id=self._chat(channel.chat_id),
                message_id=int(message_id),
                parse_mode=ParseMode.HTML,
                read_timeout=self.send_timeout,
                write_timeout=self.send_timeout,
            )
        except BadRequest as exc:
            if "not modified" in exc.message.casefold():
                return  # says so already (a retry of an edit that got this far)
            raise self._map_error(exc) from exc
        except Exception as exc:
            raise self._map_error(exc) from exc

    async def _delete_chunk(self, channel: ChannelRef, message_id: str) -> None:
        try:
            await self.bot.delete_message(self._chat(channel.chat_id), int(message_id))
        except BadRequest as exc:
            if "not found" in exc.message.casefold():
                return  # gone already, e.g. deleted by an earlier attempt
            raise self._map_error(exc) from exc
        except Exception as exc:
            raise self._map_error(exc) from exc

    async def delete(self, channel: ChannelRef, message_ids: Sequence[str]) -> None:
        """Delete a message with every chunk of it (the bot's own, or a member's when the bot
        is an admin); a chunk that is gone already counts as deleted. A chunk Telegram refuses
        to delete does not keep the others."""
        refused: AdapterError | None = None
        for message_id in message_ids:
            try:
                await self._delete_chunk(channel, message_id)
            except TransientAdapterError:
                raise  # retried whole; chunks deleted meanwhile count as deleted then
            except AdapterError as exc:
                refused = refused or exc
        if refused is not None:
            raise refused

    async def is_admin(self, channel: ChannelRef, user_id: str) -> bool:
        """Asked of Telegram now (getChatMember), never cached. Nobody administers a private
        chat with the bot. In a group, a message sent as the group itself comes from an
        anonymous admin; one sent as any other chat never counts."""
        chat = self._chat(channel.chat_id)
        if not chat.startswith("-"):
            # A private chat: its id is the user's own id, so the anonymous-admin rule below
            # would make everyone an admin of their own chat with the bot.
            return False
        if user_id in (channel.chat_id, chat):
            return True  # sender_chat is this group (translate.author_of): an anonymous admin
        if user_id.startswith("-"):
            return False  # another channel or group speaking
        try:
            member = await self.bot.get_chat_member(chat, int(user_id))
        except TelegramError as exc:
            log.warning("telegram: getChatMember failed: %s", exc)
            return False
        return member.status in ADMIN_STATUSES

    async def close(self) -> None:
        """Stop receiving."""
        self._closed.set()
