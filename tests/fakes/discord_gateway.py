"""Loopback fake of Discord's gateway websocket and REST API v10.

The real ``discord.py`` client connects to this fake instead of Discord: the fake
serves ``/gateway`` (websocket) and ``/api/v10/...`` (REST) on ``127.0.0.1`` with
an ephemeral port, keeps a small world model (guilds, roles, members, channels,
threads, messages, webhooks, application commands, interactions) and records
every REST call.  Nothing ever leaves the loopback interface.

Typical use::

    async with FakeDiscord(token="t") as fake:
        fake.add_guild(1, "Guild")
        fake.add_channel(1, 10, "general")
        fake.add_member(1, 20, "alice")
        client = discord.Client(intents=..., guild_ready_timeout=0.05)
        async with running_client(fake, client):
            await fake.user_message(10, 20, "hello")
            ...

Behaviour that mirrors Discord (and that ``discord.py`` 2.7 relies on):

* Gateway frames are plain JSON text frames.  ``discord.py`` asks for
  ``?v=10&encoding=json&compress=zlib-stream`` (``zstd-stream`` when a zstd
  module is importable) but only decompresses *binary* frames, so text frames
  are accepted.  ``FakeDiscord(zlib_stream=True)`` sends real zlib-stream binary
  frames instead when the client asked for ``zlib-stream``.
* Every dispatch carries an increasing sequence number ``s``; each session keeps
  a buffer of its dispatches so ``RESUME`` (op 6) replays what the client missed
  and then dispatches ``RESUMED``.
* REST JSON responses carry ``Content-Type: application/json`` exactly
  (``discord.py`` compares the header verbatim).
* 429 responses carry ``Via`` (``discord.py`` treats a 429 without ``Via`` as a
  Cloudflare ban and raises), the ``retry_after`` body field (which is what
  ``discord.py`` sleeps on) and the ``X-RateLimit-*`` / ``Retry-After`` headers.
  Every REST answer carries ``X-RateLimit-Limit/Remaining/Reset/Reset-After/Bucket``
  of its route's bucket (per top-level resource); :meth:`FakeDiscord.enforce_rate_limits`
  refuses past a bucket or the global limit as Discord does
  (:mod:`tests.fakes.discord_ratelimits`).
* A message sent with ``nonce`` and ``enforce_nonce`` within ``nonce_ttl`` of one the
  bot made with the same nonce is not posted again: the earlier message is answered.
  Webhook executions take no nonce (Discord's Execute Webhook has none).
* :class:`LoseResponse` handles a request and drops the connection before answering;
  :meth:`FakeDiscord.zombify` silences a gateway connection (no heartbeat ACKs, no
  dispatches) so the client must reconnect and RESUME; :meth:`FakeDiscord.invalid_session`
  and :meth:`FakeDiscord.request_reconnect` send op 9 and op 7.
* ``GET /channels/{id}/messages`` returns newest first, also with ``after=``
  (``discord.py``'s ``history(after=...)`` takes ``data[0]`` as the next cursor
  and reverses each page itself), at most 100 a page, never ephemeral messages.
* An interaction must be acknowledged (callback) within 3 s, else the callback
  answers 404 code 10062 "Unknown interaction"; its token then serves followups
  and edits for 15 minutes, after which they answer 401 code 50027 "Invalid
  Webhook Token".  :meth:`FakeDiscord.expire_interaction` ends either at once.
* Deleting a thread or forum post (:meth:`FakeDiscord.delete_thread`) removes it
  with its messages and dispatches THREAD_DELETE (id, guild_id, parent_id, type);
  archiving (:meth:`FakeDiscord.archive_thread`) dispatches THREAD_UPDATE and
  keeps everything readable.
* A member who does not accept DMs (:meth:`FakeDiscord.close_dms`) gets none:
  posting in the DM channel answers 403 code 50007.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import math
import re
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import yarl
from aiohttp import WSMsgType, web

from tests.fakes.discord_ratelimits import (
    DISCORD_ROUTE_LIMITS,
    GLOBAL_PER_SECOND,
    RateLimiter,
    RouteLimit,
)

if TYPE_CHECKING:
    import discord

JSON = dict[str, Any]
"""A decoded JSON object, as sent to or received from the client."""

DISCORD_EPOCH_MS: Final = 1_420_070_400_000

# Permission bits (https://discord.com/developers/docs/topics/permissions).
CREATE_INSTANT_INVITE: Final = 1 << 0
KICK_MEMBERS: Final = 1 << 1
BAN_MEMBERS: Final = 1 << 2
ADMINISTRATOR: Final = 1 << 3
MANAGE_CHANNELS: Final = 1 << 4
MANAGE_GUILD: Final = 1 << 5
ADD_REACTIONS: Final = 1 << 6
VIEW_CHANNEL: Final = 1 << 10
SEND_MESSAGES: Final = 1 << 11
MANAGE_MESSAGES: Final = 1 << 13
EMBED_LINKS: Final = 1 << 14
ATTACH_FILES: Final = 1 << 15
READ_MESSAGE_HISTORY: Final = 1 << 16
MENTION_EVERYONE: Final = 1 << 17
USE_EXTERNAL_EMOJIS: Final = 1 << 18
MANAGE_ROLES: Final = 1 << 28
MANAGE_WEBHOOKS: Final = 1 << 29
USE_APPLICATION_COMMANDS: Final = 1 << 31
MANAGE_THREADS: Final = 1 << 34
CREATE_PUBLIC_THREADS: Final = 1 << 35
SEND_MESSAGES_IN_THREADS: Final = 1 << 38
ALL_PERMISSIONS: Final = (1 << 53) - 1

DEFAULT_EVERYONE_PERMISSIONS: Final = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | READ_MESSAGE_HISTORY
    | ADD_REACTIONS
    | EMBED_LINKS
    | ATTACH_FILES
    | USE_EXTERNAL_EMOJIS
    | USE_APPLICATION_COMMANDS
    | CREATE_PUBLIC_THREADS
    | SEND_MESSAGES_IN_THREADS
)
"""What ``@everyone`` may do in a fresh guild made by :meth:`FakeDiscord.add_guild`."""

DEFAULT_BOT_PERMISSIONS: Final = (
    DEFAULT_EVERYONE_PERMISSIONS | MANAGE_MESSAGES | MANAGE_THREADS | MANAGE_WEBHOOKS
)
"""Permissions of the bot's managed role in each guild."""

# Channel types.
GUILD_TEXT: Final = 0
DM: Final = 1
GUILD_ANNOUNCEMENT: Final = 5
ANNOUNCEMENT_THREAD: Final = 10
PUBLIC_THREAD: Final = 11
PRIVATE_THREAD: Final = 12
GUILD_FORUM: Final = 15
THREAD_TYPES: Final = frozenset({ANNOUNCEMENT_THREAD, PUBLIC_THREAD, PRIVATE_THREAD})

# Gateway opcodes.
OP_DISPATCH: Final = 0
OP_HEARTBEAT: Final = 1
OP_IDENTIFY: Final = 2
OP_PRESENCE_UPDATE: Final = 3
OP_VOICE_STATE_UPDATE: Final = 4
OP_RESUME: Final = 6
OP_RECONNECT: Final = 7
OP_REQUEST_GUILD_MEMBERS: Final = 8
OP_INVALID_SESSION: Final = 9
OP_HELLO: Final = 10
OP_HEARTBEAT_ACK: Final = 11

# Gateway intents (only the ones the fake filters on).
INTENT_GUILDS: Final = 1 << 0
INTENT_GUILD_MEMBERS: Final = 1 << 1
INTENT_GUILD_MESSAGES: Final = 1 << 9
INTENT_GUILD_MESSAGE_REACTIONS: Final = 1 << 10
INTENT_DIRECT_MESSAGES: Final = 1 << 12
INTENT_DIRECT_MESSAGE_REACTIONS: Final = 1 << 13
INTENT_MESSAGE_CONTENT: Final = 1 << 15

# Message types and flags.
MESSAGE_DEFAULT: Final = 0
MESSAGE_REPLY: Final = 19
MESSAGE_CHAT_INPUT_COMMAND: Final = 20
FLAG_HAS_THREAD: Final = 1 << 5
FLAG_EPHEMERAL: Final = 1 << 6
FLAG_LOADING: Final = 1 << 7

MAX_CONTENT_LENGTH: Final = 2000
#: A message nonce is an integer or a string of at most 25 characters.
MAX_NONCE_LENGTH: Final = 25
DEFAULT_BOT_ID: Final = 1_100_000_000_000_000_001
DEFAULT_OWNER_ID: Final = 1_100_000_000_000_000_002

_NOT_YOUR_APP: Final = "You are not authorized to perform this action on this application"
_MENTION_USER_RE: Final = re.compile(r"<@!?(\d+)>")
_MENTION_ROLE_RE: Final = re.compile(r"<@&(\d+)>")
_EVERYONE_RE: Final = re.compile(r"@(everyone|here)\b")


# --------------------------------------------------------------------------- records


@dataclass
class Call:
    """One REST request the client made.

    ``path`` is relative to the API base (``/channels/1/messages``), decoded.
    ``json_body`` is the parsed JSON body, or the ``payload_json`` part of a
    multipart upload, or ``None``.  ``status`` is the status the fake answered
    (0 while the request is still being answered, e.g. held by :class:`Slow`).
    """

    method: str
    path: str
    json_body: Any
    headers: dict[str, str]
    query: dict[str, str] = field(default_factory=dict)
    status: int = 0
    files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RateLimited:
    """Fault: answer HTTP 429 the way Discord does.

    ``discord.py`` sleeps ``retry_after`` seconds (from the JSON body) and
    retries; ``global_`` makes it block every route meanwhile.
    """

    retry_after: float
    global_: bool = False
    scope: str = "user"
    bucket: str = "fakebucket0000"


@dataclass(frozen=True)
class ServerError:
    """Fault: answer with a 5xx status (``discord.py`` retries 500/502/504/524
    after sleeping ``1 + 2 * tries`` seconds, and raises on 503)."""

    status: int = 500


@dataclass(frozen=True)
class HTTPError:
    """Fault: answer with an arbitrary error status and Discord error ``code``."""

    status: int
    code: int = 0
    message: str = "Fake error"


@dataclass(frozen=True)
class Slow:
    """Fault: wait ``seconds`` before handling the request normally."""

    seconds: float


@dataclass(frozen=True)
class LoseResponse:
    """Fault: handle the request (a message is posted) and then drop the connection before
    any answer: the client cannot tell whether it went through."""


Fault = RateLimited | ServerError | HTTPError | Slow | LoseResponse
"""Anything :meth:`FakeDiscord.inject_rest` accepts."""


@dataclass
class _InjectedFault:
    method: str
    pattern: re.Pattern[str]
    fault: Fault
    remaining: int


@dataclass
class InteractionRecord:
    """An interaction the fake dispatched and what the bot answered.

    ``responses`` holds the JSON bodies POSTed to
    ``/interactions/{id}/{token}/callback`` (normally exactly one);
    ``original_message_id`` / ``followup_ids`` point into the message store.
    ``created`` is when it was dispatched (``time.monotonic()``); ``ack_expired``
    and ``token_expired`` are set by :meth:`FakeDiscord.expire_interaction`.
    """

    id: int
    token: str
    guild_id: int | None
    channel_id: int
    user_id: int
    command_name: str
    payload: JSON
    responses: list[JSON] = field(default_factory=list)
    original_message_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    created: float = field(default_factory=time.monotonic)
    ack_expired: bool = False
    token_expired: bool = False

    @property
    def response(self) -> JSON | None:
        """The first callback body, or ``None`` if the bot has not answered."""
        return self.responses[0] if self.responses else None


@dataclass
class _Member:
    user_id: int
    roles: list[int]
    nick: str | None
    joined_at: str


@dataclass
class _Guild:
    id: int
    name: str
    owner_id: int
    joined_at: str
    roles: dict[int, JSON] = field(default_factory=dict)
    channel_ids: list[int] = field(default_factory=list)
    members: dict[int, _Member] = field(default_factory=dict)


@dataclass(eq=False)
class _Connection:
    """One gateway websocket connection."""

    ws: web.WebSocketResponse
    transport: asyncio.Transport | None
    query: dict[str, str]
    compressor: Any | None
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    session: _Session | None = None
    closed: bool = False
    #: A zombie connection: whatever the gateway sends on it is lost (no heartbeat ACKs,
    #: no dispatches), while the session keeps them for a RESUME.
    zombie: bool = False


@dataclass(eq=False)
class _Session:
    """A gateway session: survives connection drops until invalidated."""

    session_id: str
    intents: int
    seq: int = 0
    events: list[tuple[int, JSON]] = field(default_factory=list)
    conn: _Connection | None = None
    alive: bool = True
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass
class _Request:
    method: str
    path: str
    params: dict[str, str]
    query: dict[str, str]
    body: Any
    files: list[JSON]


_Response = tuple[int, Any]
_Handler = Callable[[_Request], Awaitable[_Response]]


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _snowflake_time_iso(snowflake: int) -> str:
    ms = (snowflake >> 22) + DISCORD_EPOCH_MS
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


def _error(status: int, code: int, message: str, errors: JSON | None = None) -> _Response:
    body: JSON = {"message": message, "code": code}
    if errors is not None:
        body["errors"] = errors
    return status, body


def _form_error(field_name: str, code: str, message: str) -> _Response:
    return _error(
        400,
        50035,
        "Invalid Form Body",
        {field_name: {"_errors": [{"code": code, "message": message}]}},
    )


def _parse_emoji(raw: str) -> JSON:
    """Turn a URL emoji (``👍``, ``name:id`` or ``a:name:id``) into an emoji object."""
    parts = raw.split(":")
    if len(parts) >= 2 and parts[-1].isdigit():
        emoji: JSON = {"id": parts[-1], "name": parts[-2]}
        if len(parts) == 3 and parts[0] == "a":
            emoji["animated"] = True
        return emoji
    return {"id": None, "name": raw}


def _emoji_key(emoji: JSON) -> str:
    """``name:id`` for custom emoji, the character(s) for unicode emoji."""
    return f"{emoji['name']}:{emoji['id']}" if emoji.get("id") else str(emoji["name"])


def _same_emoji(a: JSON, b: JSON) -> bool:
    if a.get("id") or b.get("id"):
        return bool(a.get("id") == b.get("id"))
    return _emoji_key(a) == _emoji_key(b)


def _option_type(value: object) -> int:
    if isinstance(value, bool):
        return 5
    if isinstance(value, int):
        return 4
    if isinstance(value, float):
        return 10
    return 3


def _json_response(
    status: int, payload: Any, headers: Mapping[str, str] | None = None
) -> web.Response:
    """A response whose Content-Type is exactly ``application/json``."""
    if status == 204:
        return web.Response(status=204, headers=headers)
    return web.Response(
        status=status,
        body=json.dumps(payload).encode("utf-8"),
        content_type="application/json",
        headers=headers,
    )


# --------------------------------------------------------------------------- the fake


class FakeDiscord:
    """A loopback Discord (gateway + REST v10) for the real ``discord.py`` client.

    Use as ``async with FakeDiscord(token=...) as fake``; then build the world
    with :meth:`add_guild`, :meth:`add_channel`, :meth:`add_member`, point
    ``discord.py`` at it with :func:`patch_discord` (or :func:`running_client`)
    and drive "users" with :meth:`user_message`, :meth:`interaction`, ...
    """

    def __init__(
        self,
        token: str = "fake-token",
        *,
        bot_id: int = DEFAULT_BOT_ID,
        bot_name: str = "copss",
        application_id: int | None = None,
        heartbeat_interval_ms: int = 41_250,
        zlib_stream: bool = False,
        enforce_intents: bool = True,
        echo_bot_messages: bool = True,
        interaction_ack_timeout: float = 3.0,
        interaction_token_ttl: float = 15 * 60.0,
        nonce_ttl: float = 300.0,
    ) -> None:
        """Configure the fake; nothing listens until ``__aenter__``/:meth:`start`.

        ``echo_bot_messages`` dispatches MESSAGE_CREATE/UPDATE/DELETE for the
        bot's own REST actions, as Discord does.  ``enforce_intents`` drops
        events the identified intents do not cover and blanks message content
        without the MESSAGE_CONTENT intent, as Discord does.
        ``interaction_ack_timeout`` (Discord: 3 s) and ``interaction_token_ttl``
        (Discord: 15 minutes) are how long an interaction may be acknowledged
        and how long its token serves followups and edits. ``nonce_ttl`` is how
        long a message ``nonce`` sent with ``enforce_nonce`` is remembered (Discord:
        "a few minutes"). REST answers carry Discord's rate-limit headers; the
        limits themselves are enforced after :meth:`enforce_rate_limits`.
        """
        self.token = token
        self.bot_id = bot_id
        self.bot_name = bot_name
        self.application_id = application_id if application_id is not None else bot_id
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.zlib_stream = zlib_stream
        self.enforce_intents = enforce_intents
        self.echo_bot_messages = echo_bot_messages
        self.interaction_ack_timeout = interaction_ack_timeout
        self.interaction_token_ttl = interaction_token_ttl
        self.nonce_ttl = nonce_ttl
        self.ack_heartbeats = True
        """Set to ``False`` to stop answering heartbeats (dispatches still flow); see
        :meth:`zombify` for a connection that goes silent altogether."""
        self.rate_limits = RateLimiter()
        """Per-route buckets and the global limit (see :meth:`enforce_rate_limits`)."""
        #: Requests that were handled but whose answer was dropped (:class:`LoseResponse`).
        self.lost_responses: list[Call] = []

        self.calls: list[Call] = []
        self.unknown_routes: list[Call] = []
        self.identify_count = 0
        self.resume_count = 0
        self.failed_resume_count = 0
        self.heartbeat_count = 0
        self.gateway_connect_count = 0
        self.gateway_queries: list[dict[str, str]] = []
        self.gateway_received: list[JSON] = []
        self.presence_updates: list[JSON] = []
        self.dispatched: list[tuple[str, JSON]] = []
        self.interactions: dict[int, InteractionRecord] = {}
        self.commands: dict[int | None, list[JSON]] = {}
        self.webhooks: dict[int, JSON] = {}

        self._users: dict[int, JSON] = {}
        self._guilds: dict[int, _Guild] = {}
        self._channels: dict[int, JSON] = {}
        self._messages: dict[int, JSON] = {}
        self._channel_messages: dict[int, list[int]] = {}
        self._deleted: set[int] = set()
        self._dms_closed: set[int] = set()
        self._allowed_mentions: dict[int, JSON | None] = {}
        self._bot_message_ids: list[int] = []
        self._webhook_message_ids: list[int] = []
        self._nonces: dict[tuple[str, str], tuple[int, float]] = {}
        self._reaction_users: dict[tuple[int, str], list[int]] = {}
        self._interaction_tokens: dict[str, int] = {}
        self._sessions: dict[str, _Session] = {}
        self._connections: list[_Connection] = []
        self._faults: list[_InjectedFault] = []
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._last_id = 0
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._routes: list[tuple[str, re.Pattern[str], _Handler]] = self._build_routes()

        self.add_user(bot_id, bot_name, bot=True)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeDiscord:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Listen on ``127.0.0.1`` with an ephemeral port."""
        app = web.Application()
        app.router.add_get("/gateway", self._handle_gateway)
        app.router.add_get("/", self._handle_gateway)  # bare URL, as /gateway/bot's "url" reads
        app.router.add_route("*", "/api/v10/{tail:.*}", self._handle_rest)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        for address in self._runner.addresses:
            if isinstance(address, tuple):
                self._port = int(address[1])
                break
        if self._port is None:  # pragma: no cover - aiohttp always reports a TCP address
            raise RuntimeError("could not determine the fake's port")

    async def stop(self) -> None:
        """Close every gateway connection and stop the server."""
        await self.flush()
        for conn in list(self._connections):
            if not conn.closed:
                conn.closed = True
                with contextlib.suppress(Exception):
                    await conn.ws.close(code=1001, message=b"fake shutting down")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for _, future in self._waiters:
            if not future.done():
                future.cancel()
        self._waiters.clear()

    @property
    def port(self) -> int:
        """The TCP port the fake listens on."""
        if self._port is None:
            raise RuntimeError("FakeDiscord is not started")
        return self._port

    @property
    def rest_base(self) -> str:
        """Value for ``discord.http.Route.BASE``."""
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        """The websocket URL (also served by ``/gateway`` and ``/gateway/bot``)."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    # ------------------------------------------------------------------ ids & waiting

    def next_id(self) -> int:
        """A fresh snowflake: time based, strictly increasing."""
        now_ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        self._last_id = max(self._last_id + 1, now_ms << 22)
        return self._last_id

    def _notify(self) -> None:
        still: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        for predicate, future in self._waiters:
            if future.done():
                continue
            try:
                ok = predicate()
            except Exception as exc:  # surface broken predicates to the waiter
                future.set_exception(exc)
                continue
            if ok:
                future.set_result(None)
            else:
                still.append((predicate, future))
        self._waiters = still

    async def wait_for(
        self, predicate: Callable[[], bool], *, within: float = 5.0, what: str = "condition"
    ) -> None:
        """Wait until ``predicate()`` holds; it is re-checked on every fake event.

        Raises :class:`TimeoutError` naming ``what`` after ``within`` seconds.
        """
        if predicate():
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, future))
        try:
            await asyncio.wait_for(future, within)
        except TimeoutError:
            raise TimeoutError(
                f"FakeDiscord: timed out after {within}s waiting for {what}"
            ) from None

    async def wait_for_calls(
        self, method: str, path_prefix: str, *, count: int = 1, within: float = 5.0
    ) -> list[Call]:
        """Wait until ``count`` calls match :meth:`calls_to`; return them."""
        await self.wait_for(
            lambda: len(self.calls_to(method, path_prefix)) >= count,
            within=within,
            what=f"{count} x {method} {path_prefix}",
        )
        return self.calls_to(method, path_prefix)

    async def wait_for_sent(
        self, channel_id: int | None = None, *, count: int = 1, within: float = 5.0
    ) -> list[JSON]:
        """Wait until the bot created ``count`` messages (in ``channel_id``)."""
        await self.wait_for(
            lambda: len(self.sent_messages(channel_id)) >= count,
            within=within,
            what=f"{count} bot message(s) in {channel_id}",
        )
        return self.sent_messages(channel_id)

    async def wait_for_identify(self, count: int = 1, *, within: float = 5.0) -> None:
        """Wait until the client has IDENTIFYed ``count`` times."""
        await self.wait_for(
            lambda: self.identify_count >= count, within=within, what=f"{count} IDENTIFY"
        )

    async def wait_for_resume(self, count: int = 1, *, within: float = 5.0) -> None:
        """Wait until the client has RESUMEd successfully ``count`` times."""
        await self.wait_for(
            lambda: self.resume_count >= count, within=within, what=f"{count} RESUME"
        )

    async def wait_for_interaction_response(
        self, interaction_id: int, *, within: float = 5.0
    ) -> JSON:
        """Wait for the bot's callback to an interaction; return its body."""
        record = self.interactions[interaction_id]
        await self.wait_for(
            lambda: bool(record.responses), within=within, what=f"response to {interaction_id}"
        )
        return record.responses[0]

    # ------------------------------------------------------------------ world model

    def add_user(self, user_id: int, name: str, *, bot: bool = False) -> JSON:
        """Register a user (members are registered automatically)."""
        user: JSON = {
            "id": str(user_id),
            "username": name,
            "global_name": None if bot else name,
            "discriminator": "0",
            "avatar": None,
            "bot": bot,
            "system": False,
            "public_flags": 0,
            "flags": 0,
            "banner": None,
            "accent_color": None,
            "avatar_decoration_data": None,
        }
        if user_id == self.bot_id:
            user.update({"verified": True, "mfa_enabled": False, "email": None, "locale": "en-US"})
        self._users[user_id] = user
        return user

    def user(self, user_id: int) -> JSON:
        """The stored user object (``KeyError`` if unknown)."""
        try:
            return self._users[user_id]
        except KeyError:
            raise KeyError(f"FakeDiscord: unknown user {user_id}; add_member() it first") from None

    @property
    def bot_user(self) -> JSON:
        """The bot's user object."""
        return self._users[self.bot_id]

    def close_dms(self, user_id: int, closed: bool = True) -> None:
        """The user stops (``closed``) or starts again accepting direct messages from the
        bot: while closed, posting in their DM channel answers 403 code 50007 "Cannot send
        messages to this user" (opening the DM channel itself still works, as on Discord)."""
        self.user(user_id)
        if closed:
            self._dms_closed.add(user_id)
        else:
            self._dms_closed.discard(user_id)

    def add_guild(
        self,
        guild_id: int,
        name: str,
        *,
        owner_id: int | None = None,
        everyone_permissions: int = DEFAULT_EVERYONE_PERMISSIONS,
        bot_permissions: int = DEFAULT_BOT_PERMISSIONS,
    ) -> int:
        """Create a guild with ``@everyone`` (id == guild id), the bot as a member
        (with a managed role carrying ``bot_permissions``) and an owner.

        ``owner_id`` defaults to a synthetic ``guild-owner`` member; pass the id
        of a member you add later, or ``fake.bot_id``.  Dispatches GUILD_CREATE
        if a client is already connected.  Returns the guild id.
        """
        owner = owner_id if owner_id is not None else DEFAULT_OWNER_ID
        guild = _Guild(id=guild_id, name=name, owner_id=owner, joined_at=_now_iso())
        self._guilds[guild_id] = guild
        self._role(guild, guild_id, "@everyone", everyone_permissions, position=0)
        bot_role = self._role(guild, self.next_id(), self.bot_name, bot_permissions, managed=True)
        self._put_member(guild, self.bot_id, [int(bot_role["id"])], None)
        if owner_id is None:
            if DEFAULT_OWNER_ID not in self._users:
                self.add_user(DEFAULT_OWNER_ID, "guild-owner")
            self._put_member(guild, DEFAULT_OWNER_ID, [], None)
        self._dispatch_soon("GUILD_CREATE", self._guild_create_payload(guild))
        return guild_id

    def _guild(self, guild_id: int) -> _Guild:
        try:
            return self._guilds[guild_id]
        except KeyError:
            raise KeyError(f"FakeDiscord: unknown guild {guild_id}; add_guild() it first") from None

    def _role(
        self,
        guild: _Guild,
        role_id: int,
        name: str,
        permissions: int,
        *,
        position: int | None = None,
        managed: bool = False,
    ) -> JSON:
        role: JSON = {
            "id": str(role_id),
            "name": name,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "icon": None,
            "unicode_emoji": None,
            "position": len(guild.roles) if position is None else position,
            "permissions": str(permissions),
            "managed": managed,
            "mentionable": False,
            "flags": 0,
        }
        if managed:
            role["tags"] = {"bot_id": str(self.bot_id)}
        guild.roles[role_id] = role
        return role

    def add_role(self, guild_id: int, role_id: int, name: str, permissions: int = 0) -> JSON:
        """Add a role whose permission bitfield is ``permissions``
        (e.g. ``MANAGE_GUILD``, ``ADMINISTRATOR``); dispatches GUILD_ROLE_CREATE."""
        guild = self._guild(guild_id)
        role = self._role(guild, role_id, name, permissions)
        self._dispatch_soon(
            "GUILD_ROLE_CREATE", {"guild_id": str(guild_id), "role": copy.deepcopy(role)}
        )
        return role

    def _put_member(
        self, guild: _Guild, user_id: int, roles: list[int], nick: str | None
    ) -> _Member:
        member = _Member(user_id=user_id, roles=roles, nick=nick, joined_at=_now_iso())
        guild.members[user_id] = member
        return member

    def add_member(
        self,
        guild_id: int,
        user_id: int,
        name: str,
        permissions: int = 0,
        *,
        roles: Sequence[int] = (),
        nick: str | None = None,
        bot: bool = False,
    ) -> JSON:
        """Add a member (registering the user).  Non-zero ``permissions`` creates a
        dedicated role ``"<name> perms"`` with that bitfield, so
        ``member.guild_permissions`` in ``discord.py`` computes the truth from
        roles.  ``roles`` are existing role ids.  Returns the member payload and
        dispatches GUILD_MEMBER_ADD when a client is connected."""
        guild = self._guild(guild_id)
        if user_id != self.bot_id:
            self.add_user(user_id, name, bot=bot)
        role_ids = list(roles)
        for role_id in role_ids:
            if role_id not in guild.roles:
                raise KeyError(f"FakeDiscord: unknown role {role_id} in guild {guild_id}")
        if permissions:
            role = self._role(guild, self.next_id(), f"{name} perms", permissions)
            role_ids.append(int(role["id"]))
            self._dispatch_soon(
                "GUILD_ROLE_CREATE", {"guild_id": str(guild_id), "role": copy.deepcopy(role)}
            )
        self._put_member(guild, user_id, role_ids, nick)
        payload = self._member_payload(guild, user_id)
        self._dispatch_soon("GUILD_MEMBER_ADD", {**payload, "guild_id": str(guild_id)})
        return payload

    def set_member_roles(self, guild_id: int, user_id: int, roles: Sequence[int]) -> JSON:
        """Replace a member's roles; dispatches GUILD_MEMBER_UPDATE."""
        guild = self._guild(guild_id)
        guild.members[user_id].roles = list(roles)
        payload = self._member_payload(guild, user_id)
        self._dispatch_soon("GUILD_MEMBER_UPDATE", {**payload, "guild_id": str(guild_id)})
        return payload

    def member_permissions(self, guild_id: int, user_id: int) -> int:
        """Guild-level permissions of a member, computed like Discord does."""
        guild = self._guild(guild_id)
        if user_id == guild.owner_id:
            return ALL_PERMISSIONS
        member = guild.members[user_id]
        perms = int(guild.roles[guild_id]["permissions"])
        for role_id in member.roles:
            perms |= int(guild.roles[role_id]["permissions"])
        if perms & ADMINISTRATOR:
            return ALL_PERMISSIONS
        return perms

    def _member_payload(self, guild: _Guild, user_id: int, *, with_user: bool = True) -> JSON:
        member = guild.members[user_id]
        payload: JSON = {
            "roles": [str(r) for r in member.roles],
            "nick": member.nick,
            "avatar": None,
            "banner": None,
            "joined_at": member.joined_at,
            "premium_since": None,
            "deaf": False,
            "mute": False,
            "pending": False,
            "flags": 0,
            "communication_disabled_until": None,
        }
        if with_user:
            payload["user"] = copy.deepcopy(self.user(user_id))
        return payload

    def add_channel(
        self,
        guild_id: int,
        channel_id: int,
        name: str,
        type: int = GUILD_TEXT,
        *,
        parent_id: int | None = None,
        topic: str | None = None,
        owner_id: int | None = None,
    ) -> JSON:
        """Add a channel: ``type`` 0 text, 15 forum, 5 announcement, or a thread
        (11 public / 12 private / 10 announcement) which needs ``parent_id``.
        Dispatches CHANNEL_CREATE / THREAD_CREATE when a client is connected."""
        guild = self._guild(guild_id)
        if type in THREAD_TYPES:
            if parent_id is None:
                raise ValueError("threads need parent_id")
            channel = self._thread_payload(
                guild_id, channel_id, parent_id, name, type, owner_id or self.bot_id
            )
        else:
            channel = {
                "id": str(channel_id),
                "type": type,
                "guild_id": str(guild_id),
                "name": name,
                "position": len(guild.channel_ids),
                "permission_overwrites": [],
                "parent_id": str(parent_id) if parent_id is not None else None,
                "nsfw": False,
                "topic": topic,
                "last_message_id": None,
                "rate_limit_per_user": 0,
                "flags": 0,
            }
            if type == GUILD_FORUM:
                channel.update(
                    {
                        "available_tags": [],
                        "default_reaction_emoji": None,
                        "default_thread_rate_limit_per_user": 0,
                        "default_sort_order": None,
                        "default_forum_layout": 0,
                        "default_auto_archive_duration": 1440,
                    }
                )
        self._channels[channel_id] = channel
        self._channel_messages.setdefault(channel_id, [])
        guild.channel_ids.append(channel_id)
        if type in THREAD_TYPES:
            self._dispatch_soon("THREAD_CREATE", {**copy.deepcopy(channel), "newly_created": True})
        else:
            self._dispatch_soon("CHANNEL_CREATE", copy.deepcopy(channel))
        return channel

    def _thread_payload(
        self,
        guild_id: int,
        thread_id: int,
        parent_id: int,
        name: str,
        type: int,
        owner_id: int,
        *,
        auto_archive_duration: int = 1440,
    ) -> JSON:
        if parent_id not in self._channels:
            raise KeyError(f"FakeDiscord: unknown parent channel {parent_id}")
        return {
            "id": str(thread_id),
            "type": type,
            "guild_id": str(guild_id),
            "parent_id": str(parent_id),
            "owner_id": str(owner_id),
            "name": name,
            "last_message_id": None,
            "message_count": 0,
            "member_count": 1,
            "total_message_sent": 0,
            "rate_limit_per_user": 0,
            "flags": 0,
            "applied_tags": [],
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": auto_archive_duration,
                "archive_timestamp": _now_iso(),
                "locked": False,
                "invitable": True,
                "create_timestamp": _now_iso(),
            },
        }

    def channel(self, channel_id: int) -> JSON:
        """The stored channel object (``KeyError`` if unknown)."""
        return self._channels[channel_id]

    def _guild_id_of(self, channel_id: int) -> int | None:
        raw = self._channels[channel_id].get("guild_id")
        return int(raw) if raw is not None else None

    def _guild_create_payload(self, guild: _Guild) -> JSON:
        channels = [self._channels[c] for c in guild.channel_ids]
        return copy.deepcopy(
            {
                "id": str(guild.id),
                "name": guild.name,
                "icon": None,
                "splash": None,
                "discovery_splash": None,
                "banner": None,
                "description": None,
                "owner_id": str(guild.owner_id),
                "afk_channel_id": None,
                "afk_timeout": 300,
                "verification_level": 0,
                "default_message_notifications": 0,
                "explicit_content_filter": 0,
                "mfa_level": 0,
                "nsfw_level": 0,
                "premium_tier": 0,
                "premium_subscription_count": 0,
                "premium_progress_bar_enabled": False,
                "system_channel_id": None,
                "system_channel_flags": 0,
                "rules_channel_id": None,
                "public_updates_channel_id": None,
                "safety_alerts_channel_id": None,
                "vanity_url_code": None,
                "preferred_locale": "en-US",
                "features": [],
                "application_id": None,
                "max_members": 500000,
                "max_video_channel_users": 25,
                "incidents_data": None,
                "joined_at": guild.joined_at,
                "large": False,
                "unavailable": False,
                "member_count": len(guild.members),
                "roles": list(guild.roles.values()),
                "emojis": [],
                "stickers": [],
                "channels": [c for c in channels if c["type"] not in THREAD_TYPES],
                "threads": [c for c in channels if c["type"] in THREAD_TYPES],
                "members": [self._member_payload(guild, uid) for uid in guild.members],
                "presences": [],
                "voice_states": [],
                "stage_instances": [],
                "guild_scheduled_events": [],
                "soundboard_sounds": [],
            }
        )

    # ------------------------------------------------------------------ messages

    def messages(self, channel_id: int) -> list[JSON]:
        """All live (not deleted) messages of a channel, oldest first."""
        return [self._messages[m] for m in self._channel_messages.get(channel_id, [])]

    def message(self, message_id: int) -> JSON:
        """A stored message, deleted or not (``KeyError`` if unknown)."""
        return self._messages[message_id]

    def sent_messages(self, channel_id: int | None = None) -> list[JSON]:
        """Snapshots of the messages the bot created (channel sends, interaction
        responses and followups), in creation order.  Each snapshot adds
        ``allowed_mentions`` (as the bot sent it, or ``None``) and ``deleted``."""
        return self._snapshots(self._bot_message_ids, channel_id)

    def webhook_messages(self, channel_id: int | None = None) -> list[JSON]:
        """Snapshots of messages created by executing channel webhooks."""
        return self._snapshots(self._webhook_message_ids, channel_id)

    def _snapshots(self, ids: list[int], channel_id: int | None) -> list[JSON]:
        out: list[JSON] = []
        for mid in ids:
            msg = self._messages[mid]
            if channel_id is not None and msg["channel_id"] != str(channel_id):
                continue
            snap = copy.deepcopy(msg)
            snap["allowed_mentions"] = copy.deepcopy(self._allowed_mentions.get(mid))
            snap["deleted"] = mid in self._deleted
            out.append(snap)
        return out

    def calls_to(self, method: str, path_prefix: str = "/") -> list[Call]:
        """Recorded calls with ``method`` (``"*"`` for any) whose path starts
        with ``path_prefix``."""
        return [
            c
            for c in self.calls
            if (method == "*" or c.method == method.upper()) and c.path.startswith(path_prefix)
        ]

    def _resolve_mentions(
        self,
        content: str,
        guild_id: int | None,
        *,
        explicit_users: Sequence[int] = (),
        explicit_roles: Sequence[int] = (),
        allowed_mentions: JSON | None = None,
        replied_author: int | None = None,
    ) -> tuple[list[int], list[int], bool]:
        """(user ids, role ids, mention_everyone) a message pings, honouring
        ``allowed_mentions`` the way Discord does."""
        users = [int(u) for u in _MENTION_USER_RE.findall(content)]
        roles = [int(r) for r in _MENTION_ROLE_RE.findall(content)]
        everyone = bool(_EVERYONE_RE.search(content))
        users += [u for u in explicit_users if u not in users]
        roles += [r for r in explicit_roles if r not in roles]
        if allowed_mentions is not None:
            parse = allowed_mentions.get("parse", [])
            allowed_users = {int(u) for u in allowed_mentions.get("users", [])}
            allowed_roles = {int(r) for r in allowed_mentions.get("roles", [])}
            users = [u for u in users if "users" in parse or u in allowed_users]
            roles = [r for r in roles if "roles" in parse or r in allowed_roles]
            everyone = everyone and "everyone" in parse
            if replied_author is not None and not allowed_mentions.get("replied_user", False):
                replied_author = None
        if replied_author is not None and replied_author not in users:
            users.append(replied_author)
        users = [u for u in users if u in self._users]
        if guild_id is not None:
            guild_roles = self._guilds[guild_id].roles
            roles = [r for r in roles if r in guild_roles]
        else:
            roles = []
        return users, roles, everyone

    def _build_message(
        self,
        channel_id: int,
        author: JSON,
        content: str,
        *,
        message_id: int | None = None,
        message_type: int = MESSAGE_DEFAULT,
        reference_id: int | None = None,
        mention_users: Sequence[int] = (),
        mention_roles: Sequence[int] = (),
        mention_everyone: bool = False,
        embeds: Sequence[JSON] = (),
        attachments: Sequence[JSON] = (),
        components: Sequence[JSON] = (),
        flags: int = 0,
        nonce: str | int | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> JSON:
        mid = message_id if message_id is not None else self.next_id()
        guild_id = self._guild_id_of(channel_id)
        msg: JSON = {
            "id": str(mid),
            "channel_id": str(channel_id),
            "author": copy.deepcopy(author),
            "content": content,
            "timestamp": _snowflake_time_iso(mid),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": mention_everyone,
            "mentions": [copy.deepcopy(self._users[u]) for u in mention_users],
            "mention_roles": [str(r) for r in mention_roles],
            "attachments": list(attachments),
            "embeds": list(embeds),
            "reactions": [],
            "pinned": False,
            "type": message_type,
            "flags": flags,
            "components": list(components),
        }
        if guild_id is not None:
            msg["guild_id"] = str(guild_id)
        if nonce is not None:
            msg["nonce"] = nonce
        if reference_id is not None:
            ref = self._messages[reference_id]
            msg["type"] = MESSAGE_REPLY
            msg["message_reference"] = {
                "type": 0,
                "message_id": ref["id"],
                "channel_id": ref["channel_id"],
                **({"guild_id": ref["guild_id"]} if "guild_id" in ref else {}),
            }
            referenced = copy.deepcopy(ref)
            referenced.pop("referenced_message", None)
            msg["referenced_message"] = referenced
        if extra:
            msg.update(extra)
        return msg

    def _store_message(self, msg: JSON) -> None:
        mid = int(msg["id"])
        cid = int(msg["channel_id"])
        self._messages[mid] = msg
        self._channel_messages.setdefault(cid, []).append(mid)
        channel = self._channels.get(cid)
        if channel is not None:
            channel["last_message_id"] = msg["id"]
            if channel["type"] in THREAD_TYPES:
                channel["message_count"] = channel.get("message_count", 0) + 1
                channel["total_message_sent"] = channel.get("total_message_sent", 0) + 1

    def _gateway_message(self, msg: JSON) -> JSON:
        """A message as the gateway sends it: with ``member`` for guild authors
        and ``member`` inside each mention."""
        data = copy.deepcopy(msg)
        raw_gid = msg.get("guild_id")
        if raw_gid is None:
            return data
        guild = self._guilds[int(raw_gid)]
        author_id = int(msg["author"]["id"])
        if author_id in guild.members and "webhook_id" not in msg:
            data["member"] = self._member_payload(guild, author_id, with_user=False)
        for mention in data["mentions"]:
            uid = int(mention["id"])
            if uid in guild.members:
                mention["member"] = self._member_payload(guild, uid, with_user=False)
        return data

    async def _echo(self, event: str, msg: JSON) -> None:
        if self.echo_bot_messages and not msg["flags"] & FLAG_EPHEMERAL:
            await self.dispatch(event, self._gateway_message(msg))

    async def user_message(
        self,
        channel_id: int,
        author_id: int,
        content: str,
        *,
        message_reference: int | None = None,
        mentions: Sequence[int] = (),
        mention_roles: Sequence[int] = (),
        embeds: Sequence[JSON] = (),
        attachments: Sequence[JSON] = (),
    ) -> JSON:
        """A user posts ``content`` in ``channel_id``: store it and dispatch
        MESSAGE_CREATE.  ``message_reference`` is the id of the message replied
        to (pings its author, like Discord's default).  Mentions are parsed from
        ``<@id>`` / ``<@&id>`` / ``@everyone`` in ``content`` plus ``mentions``.
        Returns the stored message."""
        if channel_id not in self._channels:
            raise KeyError(f"FakeDiscord: unknown channel {channel_id}")
        guild_id = self._guild_id_of(channel_id)
        author = self.user(author_id)
        replied_author = None
        if message_reference is not None:
            replied_author = int(self._messages[message_reference]["author"]["id"])
        users, roles, everyone = self._resolve_mentions(
            content,
            guild_id,
            explicit_users=mentions,
            explicit_roles=mention_roles,
            replied_author=replied_author,
        )
        msg = self._build_message(
            channel_id,
            author,
            content,
            reference_id=message_reference,
            mention_users=users,
            mention_roles=roles,
            mention_everyone=everyone,
            embeds=embeds,
            attachments=attachments,
        )
        self._store_message(msg)
        await self.dispatch("MESSAGE_CREATE", self._gateway_message(msg))
        return msg

    async def user_edit(self, channel_id: int, message_id: int, content: str) -> JSON:
        """The author edits a message: MESSAGE_UPDATE with the full new message."""
        msg = self._messages[message_id]
        if msg["channel_id"] != str(channel_id):
            raise KeyError(f"message {message_id} is not in channel {channel_id}")
        msg["content"] = content
        msg["edited_timestamp"] = _now_iso()
        await self.dispatch("MESSAGE_UPDATE", self._gateway_message(msg))
        return msg

    async def user_delete(self, channel_id: int, message_id: int) -> None:
        """A message disappears: MESSAGE_DELETE."""
        self._delete_message(channel_id, message_id)
        await self.dispatch("MESSAGE_DELETE", self._delete_payload(channel_id, message_id))

    def _delete_message(self, channel_id: int, message_id: int) -> None:
        ids = self._channel_messages.get(channel_id, [])
        if message_id in ids:
            ids.remove(message_id)
        self._deleted.add(message_id)

    def _delete_payload(self, channel_id: int, message_id: int) -> JSON:
        data: JSON = {"id": str(message_id), "channel_id": str(channel_id)}
        guild_id = self._guild_id_of(channel_id)
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
        return data

    async def user_react(
        self, channel_id: int, message_id: int, user_id: int, emoji: str, add: bool = True
    ) -> None:
        """A user adds (or removes) a reaction: MESSAGE_REACTION_ADD/REMOVE.
        ``emoji`` is a unicode emoji or ``name:id``."""
        await self._react(channel_id, message_id, user_id, _parse_emoji(emoji), add)

    async def _react(
        self, channel_id: int, message_id: int, user_id: int, emoji: JSON, add: bool
    ) -> bool:
        msg = self._messages[message_id]
        reactions: list[JSON] = msg["reactions"]
        entry = next((r for r in reactions if _same_emoji(r["emoji"], emoji)), None)
        if entry is None:
            entry = {"emoji": emoji, "count": 0, "me": False}
            reactions.append(entry)
        users = self._reaction_users.setdefault((message_id, _emoji_key(emoji)), [])
        if add == (user_id in users):
            return False  # nothing changes (already reacted / not reacted)
        if add:
            users.append(user_id)
        else:
            users.remove(user_id)
        entry["count"] = len(users)
        entry["me"] = self.bot_id in users
        entry["count_details"] = {"burst": 0, "normal": len(users)}
        entry["burst_count"] = 0
        entry["me_burst"] = False
        entry["burst_colors"] = []
        if not users:
            reactions.remove(entry)
        data: JSON = {
            "user_id": str(user_id),
            "channel_id": str(channel_id),
            "message_id": str(message_id),
            "emoji": emoji,
            "burst": False,
            "type": 0,
        }
        guild_id = self._guild_id_of(channel_id)
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
            if add and user_id in self._guilds[guild_id].members:
                data["member"] = self._member_payload(self._guilds[guild_id], user_id)
        if add:
            data["message_author_id"] = msg["author"]["id"]
            data["burst_colors"] = []
        await self.dispatch("MESSAGE_REACTION_ADD" if add else "MESSAGE_REACTION_REMOVE", data)
        return True

    def reactions(self, message_id: int) -> list[tuple[str, list[int]]]:
        """``[(emoji name or name:id, [user ids])]`` for a message."""
        out: list[tuple[str, list[int]]] = []
        for entry in self._messages[message_id]["reactions"]:
            key = _emoji_key(entry["emoji"])
            out.append((key, list(self._reaction_users.get((message_id, key), []))))
        return out

    async def create_thread(
        self,
        parent_channel_id: int,
        name: str,
        from_message_id: int | None = None,
        type: int = PUBLIC_THREAD,
        *,
        owner_id: int | None = None,
        thread_id: int | None = None,
    ) -> JSON:
        """A user opens a thread (from a message: thread id == message id):
        THREAD_CREATE.  Returns the thread channel."""
        guild_id = self._guild_id_of(parent_channel_id)
        if guild_id is None:
            raise ValueError("threads live in guild channels")
        tid = from_message_id if from_message_id is not None else (thread_id or self.next_id())
        thread = self._thread_payload(
            guild_id, tid, parent_channel_id, name, type, owner_id or DEFAULT_OWNER_ID
        )
        await self._register_thread(guild_id, thread, from_message_id)
        return thread

    async def _register_thread(
        self, guild_id: int, thread: JSON, from_message_id: int | None
    ) -> None:
        tid = int(thread["id"])
        self._channels[tid] = thread
        self._channel_messages.setdefault(tid, [])
        self._guilds[guild_id].channel_ids.append(tid)
        if from_message_id is not None and from_message_id in self._messages:
            starter = self._messages[from_message_id]
            starter["flags"] |= FLAG_HAS_THREAD
            starter["thread"] = copy.deepcopy(thread)
        await self.dispatch("THREAD_CREATE", {**copy.deepcopy(thread), "newly_created": True})

    async def delete_thread(self, thread_id: int) -> None:
        """A moderator deletes a thread or forum post: it goes with every message in it
        (its history and messages answer 404 from now on) and THREAD_DELETE carries only
        its id, guild, parent and type, as on Discord.  A thread opened from a message
        leaves that message in the parent channel."""
        thread = self._channels.get(thread_id)
        if thread is None or thread["type"] not in THREAD_TYPES:
            raise KeyError(f"FakeDiscord: {thread_id} is not a thread")
        for mid in list(self._channel_messages.get(thread_id, [])):
            self._delete_message(thread_id, mid)
        del self._channels[thread_id]
        self._channel_messages.pop(thread_id, None)
        guild_id = int(thread["guild_id"])
        self._guilds[guild_id].channel_ids.remove(thread_id)
        await self.dispatch(
            "THREAD_DELETE",
            {
                "id": thread["id"],
                "guild_id": thread["guild_id"],
                "parent_id": thread["parent_id"],
                "type": thread["type"],
            },
        )

    async def archive_thread(self, thread_id: int, archived: bool = True) -> JSON:
        """A thread or forum post is archived (or unarchived): THREAD_UPDATE with the
        whole thread.  Its messages stay, and its history can still be read."""
        thread = self._channels.get(thread_id)
        if thread is None or thread["type"] not in THREAD_TYPES:
            raise KeyError(f"FakeDiscord: {thread_id} is not a thread")
        metadata = thread["thread_metadata"]
        metadata["archived"] = archived
        metadata["archive_timestamp"] = _now_iso()
        await self.dispatch("THREAD_UPDATE", copy.deepcopy(thread))
        return thread

    # ------------------------------------------------------------------ interactions

    async def interaction(
        self,
        guild_id: int | None,
        channel_id: int,
        user_id: int,
        command_name: str,
        options: Mapping[str, Any] | None = None,
        *,
        subcommand: str | None = None,
        raw_options: list[JSON] | None = None,
        resolved: JSON | None = None,
        locale: str = "en-US",
    ) -> InteractionRecord:
        """A user invokes slash command ``command_name``: INTERACTION_CREATE
        (type 2, data type 1).  ``options`` maps names to str/int/float/bool
        values (types inferred); ``raw_options`` overrides them verbatim.  If
        the command was registered as a guild command for ``guild_id`` via the
        bulk-overwrite route, ``data.guild_id`` is set (``discord.py`` looks
        guild commands up by it).  Returns the :class:`InteractionRecord`."""
        interaction_id = self.next_id()
        token = f"itoken-{uuid.uuid4().hex}"
        opts: list[JSON]
        if raw_options is not None:
            opts = raw_options
        else:
            opts = [
                {"name": name, "type": _option_type(value), "value": value}
                for name, value in (options or {}).items()
            ]
        if subcommand is not None:
            opts = [{"name": subcommand, "type": 1, "options": opts}]
        data: JSON = {"name": command_name, "type": 1, "options": opts}
        command = None
        if guild_id is not None:
            command = next(
                (c for c in self.commands.get(guild_id, []) if c["name"] == command_name), None
            )
        if command is not None:
            data["guild_id"] = str(guild_id)
        else:
            command = next(
                (c for c in self.commands.get(None, []) if c["name"] == command_name), None
            )
        data["id"] = command["id"] if command is not None else str(self.next_id())
        if resolved is not None:
            data["resolved"] = resolved
        channel = copy.deepcopy(self._channels[channel_id])
        payload: JSON = {
            "id": str(interaction_id),
            "application_id": str(self.application_id),
            "type": 2,
            "data": data,
            "channel_id": str(channel_id),
            "channel": channel,
            "token": token,
            "version": 1,
            "locale": locale,
            "entitlements": [],
            "attachment_size_limit": 26_214_400,
            "context": 0 if guild_id is not None else 2,
        }
        if guild_id is not None:
            guild = self._guild(guild_id)
            member = self._member_payload(guild, user_id)
            member["permissions"] = str(self.member_permissions(guild_id, user_id))
            payload.update(
                {
                    "guild_id": str(guild_id),
                    "guild": {"id": str(guild_id), "locale": "en-US", "features": []},
                    "guild_locale": "en-US",
                    "member": member,
                    "app_permissions": str(self.member_permissions(guild_id, self.bot_id)),
                    "authorizing_integration_owners": {"0": str(guild_id)},
                }
            )
        else:
            payload["user"] = copy.deepcopy(self.user(user_id))
            payload["authorizing_integration_owners"] = {"1": str(user_id)}
        record = InteractionRecord(
            id=interaction_id,
            token=token,
            guild_id=guild_id,
            channel_id=channel_id,
            user_id=user_id,
            command_name=command_name,
            payload=payload,
        )
        self.interactions[interaction_id] = record
        self._interaction_tokens[token] = interaction_id
        await self.dispatch("INTERACTION_CREATE", copy.deepcopy(payload))
        return record

    def expire_interaction(self, interaction_id: int, *, token: bool = False) -> None:
        """End an interaction's time now instead of after Discord's limits: it can no
        longer be acknowledged (callback: 404 code 10062) and, with ``token``, its
        followups and edits fail too (401 code 50027), as after 15 minutes."""
        record = self.interactions[interaction_id]
        record.ack_expired = True
        record.token_expired = record.token_expired or token

    def _ack_expired(self, record: InteractionRecord) -> bool:
        late = time.monotonic() - record.created > self.interaction_ack_timeout
        return record.ack_expired or late

    def _token_expired(self, record: InteractionRecord) -> bool:
        late = time.monotonic() - record.created > self.interaction_token_ttl
        return record.token_expired or late

    # ------------------------------------------------------------------ faults

    def inject_rest(self, method: str, path_regex: str, fault: Fault, *, times: int = 1) -> None:
        """Queue ``fault`` for the next ``times`` requests whose method is
        ``method`` (``"*"`` for any) and whose API path (``/channels/1/messages``)
        fully matches ``path_regex``.  Faults are consumed in FIFO order."""
        self._faults.append(
            _InjectedFault(method.upper(), re.compile(path_regex), fault, max(1, times))
        )

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for item in self._faults:
            if item.method not in ("*", method) or not item.pattern.fullmatch(path):
                continue
            item.remaining -= 1
            if item.remaining <= 0:
                self._faults.remove(item)
            return item.fault
        return None

    def pending_faults(self) -> int:
        """How many injected fault uses are still queued."""
        return sum(f.remaining for f in self._faults)

    async def drop_websocket(self, code: int | None = 4000) -> int:
        """Drop every gateway connection without ending its session, so the
        client RESUMEs.  ``code`` is the close code sent (4000 = unknown error);
        ``None`` aborts the TCP connection instead (a 1006-like drop).  Events
        dispatched until the client resumes are buffered and replayed.  Returns
        the number of connections dropped."""
        dropped = 0
        for conn in [c for c in self._connections if not c.closed]:
            session = conn.session
            if session is not None:
                async with session.lock:
                    if session.conn is conn:
                        session.conn = None
            conn.session = None
            conn.closed = True
            dropped += 1
            if code is None and conn.transport is not None:
                conn.transport.abort()
            else:
                with contextlib.suppress(Exception):
                    await conn.ws.close(code=code or 4000, message=b"fake drop")
        return dropped

    async def invalid_session(self, resumable: bool = False) -> None:
        """Send op 9.  Not resumable: every session dies and the client must
        re-IDENTIFY (``discord.py`` sleeps 5 s in ``before_identify_hook`` before
        a non-initial IDENTIFY; override the hook in tests).  Resumable: the
        client closes and RESUMEs."""
        targets = [c for c in self._connections if not c.closed]
        if not resumable:
            for session in self._sessions.values():
                session.alive = False
            self._sessions.clear()
        for conn in targets:
            if not resumable:
                conn.session = None
            await self._send(conn, {"op": OP_INVALID_SESSION, "d": resumable, "s": None, "t": None})

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT: the client closes and RESUMEs."""
        for conn in [c for c in self._connections if not c.closed]:
            await self._send(conn, {"op": OP_RECONNECT, "d": None, "s": None, "t": None})

    def zombify(self) -> int:
        """Turn every open gateway connection into a zombie: from now on nothing reaches the
        client on it, heartbeat ACKs (op 11) included, while its session keeps every
        dispatch for a RESUME. A client must notice the missing ACKs, close the connection
        and RESUME on a new one. Returns the number of connections silenced."""
        silenced = 0
        for conn in self._connections:
            if not conn.closed and not conn.zombie:
                conn.zombie = True
                silenced += 1
        return silenced

    def enforce_rate_limits(
        self,
        *,
        routes: Sequence[RouteLimit] = DISCORD_ROUTE_LIMITS,
        global_per_second: int = GLOBAL_PER_SECOND,
        time_scale: float = 1.0,
    ) -> RateLimiter:
        """Refuse requests past their route's bucket or the global limit with Discord's 429
        (see :mod:`tests.fakes.discord_ratelimits`); windows are divided by ``time_scale``.
        Returns the limiter, whose ``refusals`` list every 429 it answered."""
        self.rate_limits = RateLimiter(
            enforce=True,
            routes=tuple(routes),
            global_per_second=global_per_second,
            time_scale=time_scale,
        )
        return self.rate_limits

    # ------------------------------------------------------------------ gateway

    @property
    def connected(self) -> bool:
        """Whether some live session currently has an open connection."""
        return any(s.conn is not None for s in self._sessions.values() if s.alive)

    async def dispatch(self, event: str, data: JSON) -> None:
        """Dispatch ``event`` (op 0) to every live session, connected or not;
        disconnected sessions buffer it for RESUME.  Escape hatch for events the
        helpers do not cover."""
        self.dispatched.append((event, data))
        for session in list(self._sessions.values()):
            if not session.alive:
                continue
            filtered = self._filter_for_intents(event, data, session.intents)
            if filtered is None:
                continue
            async with session.lock:
                await self._emit(session, event, filtered)
        self._notify()

    async def flush(self) -> None:
        """Wait until dispatches scheduled by the synchronous world-building
        methods (``add_channel`` etc. while a client is connected) went out."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    def _dispatch_soon(self, event: str, data: JSON) -> None:
        """Dispatch from synchronous world-building code if a session exists."""
        if not self._sessions:
            return
        loop = asyncio.get_running_loop()
        task = loop.create_task(self.dispatch(event, data))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _filter_for_intents(self, event: str, data: JSON, intents: int) -> JSON | None:
        if not self.enforce_intents:
            return copy.deepcopy(data)
        in_guild = "guild_id" in data
        needed = {
            "GUILD_CREATE": INTENT_GUILDS,
            "GUILD_ROLE_CREATE": INTENT_GUILDS,
            "CHANNEL_CREATE": INTENT_GUILDS,
            "THREAD_CREATE": INTENT_GUILDS,
            "THREAD_UPDATE": INTENT_GUILDS,
            "THREAD_DELETE": INTENT_GUILDS,
            "CHANNEL_UPDATE": INTENT_GUILDS,
            "CHANNEL_DELETE": INTENT_GUILDS,
            "GUILD_MEMBER_ADD": INTENT_GUILD_MEMBERS,
            "GUILD_MEMBER_UPDATE": INTENT_GUILD_MEMBERS,
        }.get(event)
        if event.startswith("MESSAGE_REACTION"):
            needed = INTENT_GUILD_MESSAGE_REACTIONS if in_guild else INTENT_DIRECT_MESSAGE_REACTIONS
        elif event.startswith("MESSAGE_"):
            needed = INTENT_GUILD_MESSAGES if in_guild else INTENT_DIRECT_MESSAGES
        if needed is not None and not intents & needed:
            return None
        out = copy.deepcopy(data)
        if event in ("MESSAGE_CREATE", "MESSAGE_UPDATE") and not intents & INTENT_MESSAGE_CONTENT:
            author = out.get("author", {}).get("id")
            pinged = any(m.get("id") == str(self.bot_id) for m in out.get("mentions", []))
            if in_guild and author != str(self.bot_id) and not pinged:
                out.update({"content": "", "embeds": [], "attachments": [], "components": []})
        return out

    async def _send(self, conn: _Connection, payload: JSON) -> bool:
        """Write one gateway payload; ``False`` (and the connection marked
        closed) if the socket is gone."""
        if conn.closed and payload.get("op") != OP_INVALID_SESSION:
            return False
        if conn.zombie:
            return True  # lost on the way, as far as the sender can tell
        raw = json.dumps(payload)
        try:
            async with conn.send_lock:
                if conn.compressor is not None:
                    chunk = conn.compressor.compress(raw.encode("utf-8"))
                    chunk += conn.compressor.flush(zlib.Z_SYNC_FLUSH)
                    await conn.ws.send_bytes(chunk)
                else:
                    await conn.ws.send_str(raw)
        except (ConnectionError, RuntimeError):
            conn.closed = True
            return False
        return True

    async def _emit(self, session: _Session, event: str, data: JSON) -> None:
        """Sequence, buffer and (if connected) send a dispatch.  Caller holds
        ``session.lock``."""
        session.seq += 1
        payload: JSON = {"op": OP_DISPATCH, "t": event, "s": session.seq, "d": data}
        session.events.append((session.seq, payload))
        conn = session.conn
        if conn is not None and not await self._send(conn, payload):
            session.conn = None

    async def _handle_gateway(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(timeout=1.0, autoping=True)
        await ws.prepare(request)
        query = dict(request.query)
        self.gateway_queries.append(query)
        self.gateway_connect_count += 1
        compressor = None
        if self.zlib_stream and query.get("compress") == "zlib-stream":
            compressor = zlib.compressobj()
        conn = _Connection(ws=ws, transport=request.transport, query=query, compressor=compressor)
        self._connections.append(conn)
        await self._send(
            conn,
            {
                "op": OP_HELLO,
                "d": {"heartbeat_interval": self.heartbeat_interval_ms, "_trace": ["fake"]},
                "s": None,
                "t": None,
            },
        )
        try:
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    continue
                raw = msg.data if isinstance(msg.data, str) else msg.data.decode("utf-8")
                payload = json.loads(raw)
                if isinstance(payload, dict):
                    await self._on_gateway_op(conn, payload)
        finally:
            conn.closed = True
            session = conn.session
            if session is not None:
                async with session.lock:
                    if session.conn is conn:
                        session.conn = None
                # A client closing with 1000/1001 ends its session (as on Discord).
                if ws.close_code in (1000, 1001):
                    session.alive = False
                    self._sessions.pop(session.session_id, None)
            with contextlib.suppress(ValueError):
                self._connections.remove(conn)
            self._notify()
        return ws

    async def _on_gateway_op(self, conn: _Connection, payload: JSON) -> None:
        self.gateway_received.append(payload)
        op = payload.get("op")
        data = payload.get("d")
        if op == OP_HEARTBEAT:
            self.heartbeat_count += 1
            if self.ack_heartbeats:
                await self._send(conn, {"op": OP_HEARTBEAT_ACK, "d": None, "s": None, "t": None})
        elif op == OP_IDENTIFY and isinstance(data, dict):
            await self._identify(conn, data)
        elif op == OP_RESUME and isinstance(data, dict):
            await self._resume(conn, data)
        elif op == OP_PRESENCE_UPDATE and isinstance(data, dict):
            self.presence_updates.append(data)
        elif op == OP_REQUEST_GUILD_MEMBERS and isinstance(data, dict):
            await self._request_members(conn, data)
        self._notify()

    async def _identify(self, conn: _Connection, data: JSON) -> None:
        if data.get("token") != self.token:
            conn.closed = True
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        if conn.session is not None:
            conn.closed = True
            await conn.ws.close(code=4005, message=b"Already authenticated.")
            return
        session = _Session(session_id=uuid.uuid4().hex, intents=int(data.get("intents", 0)))
        self._sessions[session.session_id] = session
        self.identify_count += 1
        async with session.lock:
            session.conn = conn
            conn.session = session
            ready: JSON = {
                "v": 10,
                "user": copy.deepcopy(self.bot_user),
                "guilds": [{"id": str(g), "unavailable": True} for g in self._guilds],
                "session_id": session.session_id,
                "resume_gateway_url": self.gateway_url,
                "session_type": "normal",
                "application": {"id": str(self.application_id), "flags": 0},
                "private_channels": [],
                "relationships": [],
                "presences": [],
                "guild_join_requests": [],
                "geo_ordered_rtc_regions": [],
                "user_settings": {},
                "auth": {},
                "_trace": ["fake"],
            }
            if "shard" in data:
                ready["shard"] = data["shard"]
            await self._emit(session, "READY", ready)
            for guild in self._guilds.values():
                await self._emit(session, "GUILD_CREATE", self._guild_create_payload(guild))

    async def _resume(self, conn: _Connection, data: JSON) -> None:
        session = self._sessions.get(str(data.get("session_id")))
        if session is None or not session.alive or data.get("token") != self.token:
            self.failed_resume_count += 1
            await self._send(conn, {"op": OP_INVALID_SESSION, "d": False, "s": None, "t": None})
            return
        last_seq = data.get("seq")
        after = int(last_seq) if isinstance(last_seq, int) else 0
        async with session.lock:
            old = session.conn
            if old is not None and old is not conn:
                old.session = None
                old.closed = True
                with contextlib.suppress(Exception):
                    await old.ws.close(code=4000, message=b"session resumed elsewhere")
            session.conn = conn
            conn.session = session
            for seq, payload in session.events:
                if seq > after and not await self._send(conn, payload):
                    session.conn = None
                    return
            await self._emit(session, "RESUMED", {"_trace": ["fake"]})
        self.resume_count += 1

    async def _request_members(self, conn: _Connection, data: JSON) -> None:
        session = conn.session
        guild = self._guilds.get(int(data.get("guild_id", 0)))
        if session is None or guild is None:
            return
        query = str(data.get("query") or "")
        user_ids = {int(u) for u in data.get("user_ids") or []}
        members = [
            self._member_payload(guild, uid)
            for uid in guild.members
            if (not user_ids or uid in user_ids)
            and self._users[uid]["username"].lower().startswith(query.lower())
        ]
        chunk: JSON = {
            "guild_id": str(guild.id),
            "members": members,
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
        }
        if data.get("nonce") is not None:
            chunk["nonce"] = data["nonce"]
        async with session.lock:
            await self._emit(session, "GUILD_MEMBERS_CHUNK", chunk)

    # ------------------------------------------------------------------ REST plumbing

    async def _handle_rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        method = request.method.upper()
        body, files = await self._read_body(request)
        call = Call(
            method=method,
            path=path,
            json_body=body,
            headers=dict(request.headers),
            query=dict(request.query),
            files=[str(f["filename"]) for f in files],
        )
        self.calls.append(call)
        self._notify()  # announced on arrival (``status`` 0 while held) and once answered
        try:
            response = await self._answer(call, request, body, files)
        finally:
            self._notify()
        return response

    async def _answer(
        self, call: Call, request: web.Request, body: Any, files: list[JSON]
    ) -> web.Response:
        fault = self._take_fault(call.method, call.path)
        if isinstance(fault, LoseResponse):
            response = await self._route(call, request, body, files)
            self.lost_responses.append(call)
            if request.transport is not None:
                request.transport.abort()
            return response  # written to a closed connection: the client never reads it
        if isinstance(fault, Slow):
            await asyncio.sleep(fault.seconds)
        elif isinstance(fault, RateLimited):
            call.status = 429
            return self._rate_limited(fault)
        elif isinstance(fault, ServerError):
            call.status = fault.status
            return _json_response(
                fault.status, {"message": f"{fault.status}: Server Error", "code": 0}
            )
        elif isinstance(fault, HTTPError):
            call.status = fault.status
            return _json_response(fault.status, {"message": fault.message, "code": fault.code})
        return await self._route(call, request, body, files)

    async def _route(
        self, call: Call, request: web.Request, body: Any, files: list[JSON]
    ) -> web.Response:
        """Answer a request no fault intercepted: auth, rate limits, then its route."""
        needs_auth = not call.path.startswith(("/webhooks/", "/interactions/", "/gateway"))
        if needs_auth and request.headers.get("Authorization") != f"Bot {self.token}":
            call.status = 401
            return _json_response(401, {"message": "401: Unauthorized", "code": 0})

        refusal, limit_headers = self.rate_limits.check(call.method, call.path)
        if refusal is not None:
            call.status = 429
            return _json_response(429, refusal.body, {"Via": "1.1 google", **limit_headers})

        for method, pattern, handler in self._routes:
            if method != call.method:
                continue
            match = pattern.fullmatch(call.path)
            if match is None:
                continue
            req = _Request(
                method=call.method,
                path=call.path,
                params=match.groupdict(),
                query=call.query,
                body=body,
                files=files,
            )
            status, payload = await handler(req)
            call.status = status
            return _json_response(status, payload, limit_headers)
        self.unknown_routes.append(call)
        call.status = 404
        return _json_response(404, {"message": "404: Not Found", "code": 0})

    def _rate_limited(self, fault: RateLimited) -> web.Response:
        retry = fault.retry_after
        headers = {
            "Via": "1.1 google",
            "Retry-After": str(max(1, math.ceil(retry))),
            "X-RateLimit-Limit": "5",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + retry:.3f}",
            "X-RateLimit-Reset-After": f"{retry:.3f}",
            "X-RateLimit-Bucket": fault.bucket,
            "X-RateLimit-Scope": "global" if fault.global_ else fault.scope,
        }
        if fault.global_:
            headers["X-RateLimit-Global"] = "true"
        body = {
            "message": "You are being rate limited.",
            "retry_after": retry,
            "global": fault.global_,
        }
        return _json_response(429, body, headers)

    async def _read_body(self, request: web.Request) -> tuple[Any, list[JSON]]:
        if not request.body_exists:
            return None, []
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            files: list[JSON] = []
            body: Any = None
            for name, value in form.items():
                if name == "payload_json":
                    if isinstance(value, web.FileField):
                        body = json.loads(value.file.read())
                    else:
                        body = json.loads(value)
                elif isinstance(value, web.FileField):
                    data = value.file.read()
                    files.append(
                        {
                            "field": name,
                            "filename": value.filename,
                            "size": len(data),
                            "content_type": value.content_type,
                        }
                    )
            return body, files
        raw = await request.text()
        if not raw:
            return None, []
        try:
            return json.loads(raw), []
        except ValueError:
            return raw, []

    def _build_routes(self) -> list[tuple[str, re.Pattern[str], _Handler]]:
        c = r"(?P<cid>\d+)"
        m = r"(?P<mid>\d+)"
        g = r"(?P<gid>\d+)"
        e = r"(?P<emoji>[^/]+)"
        app = r"(?P<app>\d+)"
        hook = r"(?P<wid>\d+)/(?P<token>[^/]+)"
        table: list[tuple[str, str, _Handler]] = [
            ("GET", r"/gateway", self._r_gateway),
            ("GET", r"/gateway/bot", self._r_gateway_bot),
            ("GET", r"/users/@me", self._r_me),
            ("GET", r"/users/(?P<uid>\d+)", self._r_user),
            ("POST", r"/users/@me/channels", self._r_create_dm),
            ("GET", r"/oauth2/applications/@me", self._r_application),
            ("GET", r"/applications/@me", self._r_application),
            ("GET", rf"/channels/{c}", self._r_get_channel),
            ("GET", rf"/channels/{c}/messages", self._r_history),
            ("POST", rf"/channels/{c}/messages", self._r_post_message),
            ("GET", rf"/channels/{c}/messages/{m}", self._r_get_message),
            ("PATCH", rf"/channels/{c}/messages/{m}", self._r_edit_message),
            ("DELETE", rf"/channels/{c}/messages/{m}", self._r_delete_message),
            ("POST", rf"/channels/{c}/messages/bulk-delete", self._r_bulk_delete),
            ("PUT", rf"/channels/{c}/messages/{m}/reactions/{e}/@me", self._r_add_reaction),
            ("DELETE", rf"/channels/{c}/messages/{m}/reactions/{e}/@me", self._r_remove_reaction),
            (
                "DELETE",
                rf"/channels/{c}/messages/{m}/reactions/{e}/(?P<uid>\d+)",
                self._r_remove_reaction,
            ),
            ("POST", rf"/channels/{c}/typing", self._r_no_content),
            ("POST", rf"/channels/{c}/messages/{m}/threads", self._r_thread_from_message),
            ("POST", rf"/channels/{c}/threads", self._r_thread),
            ("PUT", rf"/channels/{c}/thread-members/@me", self._r_no_content),
            ("GET", rf"/channels/{c}/webhooks", self._r_channel_webhooks),
            ("POST", rf"/channels/{c}/webhooks", self._r_create_webhook),
            ("GET", rf"/guilds/{g}", self._r_get_guild),
            ("GET", rf"/guilds/{g}/channels", self._r_guild_channels),
            ("GET", rf"/guilds/{g}/roles", self._r_guild_roles),
            ("GET", rf"/guilds/{g}/members", self._r_guild_members),
            ("GET", rf"/guilds/{g}/members/(?P<uid>\d+)", self._r_guild_member),
            ("POST", r"/interactions/(?P<iid>\d+)/(?P<token>[^/]+)/callback", self._r_callback),
            ("POST", rf"/webhooks/{hook}", self._r_execute_webhook),
            ("GET", rf"/webhooks/{hook}/messages/(?P<mid>\d+|@original)", self._r_get_hook_msg),
            ("PATCH", rf"/webhooks/{hook}/messages/(?P<mid>\d+|@original)", self._r_edit_hook_msg),
            (
                "DELETE",
                rf"/webhooks/{hook}/messages/(?P<mid>\d+|@original)",
                self._r_delete_hook_msg,
            ),
            ("GET", rf"/webhooks/{hook}", self._r_get_webhook),
            ("GET", r"/webhooks/(?P<wid>\d+)", self._r_get_webhook),
            ("GET", rf"/applications/{app}/commands", self._r_get_commands),
            ("PUT", rf"/applications/{app}/commands", self._r_put_commands),
            ("GET", rf"/applications/{app}/guilds/{g}/commands", self._r_get_commands),
            ("PUT", rf"/applications/{app}/guilds/{g}/commands", self._r_put_commands),
        ]
        return [(method, re.compile(pattern), handler) for method, pattern, handler in table]

    def _channel_or_none(self, raw: str) -> JSON | None:
        return self._channels.get(int(raw))

    def _live_message(self, channel_id: int, message_id: int) -> JSON | None:
        msg = self._messages.get(message_id)
        if msg is None or message_id in self._deleted or msg["channel_id"] != str(channel_id):
            return None
        return msg

    # ------------------------------------------------------------------ REST handlers

    async def _r_no_content(self, req: _Request) -> _Response:
        return 204, None

    async def _r_gateway(self, req: _Request) -> _Response:
        return 200, {"url": self.gateway_url}

    async def _r_gateway_bot(self, req: _Request) -> _Response:
        # discord.py (AutoShardedClient) only uses shards/url/session_start_limit.
        return 200, {
            "url": self.gateway_url,
            "shards": 1,
            "session_start_limit": {
                "total": 1000,
                "remaining": 999,
                "reset_after": 14_400_000,
                "max_concurrency": 1,
            },
        }

    async def _r_me(self, req: _Request) -> _Response:
        return 200, self.bot_user

    async def _r_user(self, req: _Request) -> _Response:
        user = self._users.get(int(req.params["uid"]))
        if user is None:
            return _error(404, 10013, "Unknown User")
        return 200, user

    async def _r_create_dm(self, req: _Request) -> _Response:
        recipient = int((req.body or {}).get("recipient_id", 0))
        if recipient not in self._users:
            return _error(400, 50033, "Invalid Recipients")
        for channel in self._channels.values():
            if channel["type"] == DM and channel["recipients"][0]["id"] == str(recipient):
                return 200, channel
        cid = self.next_id()
        channel = {
            "id": str(cid),
            "type": DM,
            "last_message_id": None,
            "recipients": [copy.deepcopy(self._users[recipient])],
            "flags": 0,
        }
        self._channels[cid] = channel
        self._channel_messages[cid] = []
        return 200, channel

    async def _r_application(self, req: _Request) -> _Response:
        owner = self._users.get(DEFAULT_OWNER_ID) or self.add_user(DEFAULT_OWNER_ID, "guild-owner")
        return 200, {
            "id": str(self.application_id),
            "name": self.bot_name,
            "icon": None,
            "description": "",
            "summary": "",
            "type": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "verify_key": "0" * 64,
            "flags": 0,
            "owner": owner,
            "team": None,
            "bot": self.bot_user,
            "redirect_uris": [],
            "approximate_guild_count": len(self._guilds),
        }

    async def _r_get_channel(self, req: _Request) -> _Response:
        channel = self._channel_or_none(req.params["cid"])
        if channel is None:
            return _error(404, 10003, "Unknown Channel")
        return 200, channel

    async def _r_history(self, req: _Request) -> _Response:
        cid = int(req.params["cid"])
        if cid not in self._channels:
            return _error(404, 10003, "Unknown Channel")
        try:
            limit = min(max(int(req.query.get("limit", "50")), 1), 100)
        except ValueError:
            return _form_error("limit", "NUMBER_TYPE_COERCE", "Value is not int.")
        # Ephemeral messages are seen only by their member, never in a channel's history.
        ordered = sorted(
            m
            for m in self._channel_messages.get(cid, [])
            if not self._messages[m]["flags"] & FLAG_EPHEMERAL
        )
        if "around" in req.query:
            around = int(req.query["around"])
            older = [i for i in ordered if i < around][-(limit // 2) :] if limit > 1 else []
            newer = [i for i in ordered if i >= around][: limit - len(older)]
            chosen = older + newer
        elif "after" in req.query:
            after = int(req.query["after"])
            chosen = [i for i in ordered if i > after][:limit]
        elif "before" in req.query:
            before = int(req.query["before"])
            chosen = [i for i in ordered if i < before][-limit:]
        else:
            chosen = ordered[-limit:]
        # Discord always answers newest first, also for after=.
        return 200, [self._messages[i] for i in reversed(chosen)]

    async def _r_get_message(self, req: _Request) -> _Response:
        msg = self._live_message(int(req.params["cid"]), int(req.params["mid"]))
        if msg is None:
            return _error(404, 10008, "Unknown Message")
        return 200, msg

    def _attachments_from(self, files: list[JSON], body: JSON) -> list[JSON]:
        out: list[JSON] = []
        for index, f in enumerate(files):
            aid = self.next_id()
            filename = f["filename"]
            for meta in body.get("attachments", []):
                if str(meta.get("id")) == str(index) and meta.get("filename"):
                    filename = meta["filename"]
            out.append(
                {
                    "id": str(aid),
                    "filename": filename,
                    "size": f["size"],
                    "url": f"https://cdn.invalid/attachments/{aid}/{filename}",
                    "proxy_url": f"https://media.invalid/attachments/{aid}/{filename}",
                    "content_type": f.get("content_type"),
                }
            )
        return out

    async def _create_bot_message(
        self,
        channel_id: int,
        body: JSON,
        files: list[JSON],
        *,
        author: JSON | None = None,
        message_type: int = MESSAGE_DEFAULT,
        extra: Mapping[str, Any] | None = None,
        message_id: int | None = None,
        webhook: bool = False,
    ) -> _Response:
        """Validate ``body`` like Discord and create a message (not yet stored)."""
        content = body.get("content") or ""
        if not isinstance(content, str):
            content = str(content)
        if len(content) > MAX_CONTENT_LENGTH:
            return _form_error(
                "content",
                "BASE_TYPE_MAX_LENGTH",
                f"Must be {MAX_CONTENT_LENGTH} or fewer in length.",
            )
        embeds = list(body.get("embeds") or [])
        components = list(body.get("components") or [])
        has_payload = body.get("sticker_ids") or body.get("poll") or components
        if not content and not embeds and not files and not has_payload:
            return _error(400, 50006, "Cannot send an empty message")
        guild_id = self._guild_id_of(channel_id)
        reference_id: int | None = None
        replied_author: int | None = None
        ref = body.get("message_reference")
        if isinstance(ref, dict) and ref.get("message_id") is not None:
            ref_id = int(ref["message_id"])
            ref_channel = int(ref.get("channel_id") or channel_id)
            if self._live_message(ref_channel, ref_id) is not None:
                reference_id = ref_id
                replied_author = int(self._messages[ref_id]["author"]["id"])
            elif ref.get("fail_if_not_exists", True):
                return _form_error(
                    "message_reference", "MESSAGE_REFERENCE_UNKNOWN_MESSAGE", "Unknown message"
                )
        allowed = body.get("allowed_mentions")
        users, roles, everyone = self._resolve_mentions(
            content,
            guild_id,
            allowed_mentions=allowed if isinstance(allowed, dict) else None,
            replied_author=replied_author,
        )
        msg = self._build_message(
            channel_id,
            author if author is not None else self.bot_user,
            content,
            message_id=message_id,
            message_type=message_type,
            reference_id=reference_id,
            mention_users=users,
            mention_roles=roles,
            mention_everyone=everyone,
            embeds=embeds,
            attachments=self._attachments_from(files, body),
            components=components,
            flags=int(body.get("flags") or 0),
            nonce=body.get("nonce"),
            extra=extra,
        )
        if webhook:
            self._webhook_message_ids.append(int(msg["id"]))
        else:
            self._bot_message_ids.append(int(msg["id"]))
        self._allowed_mentions[int(msg["id"])] = copy.deepcopy(allowed)
        self._store_message(msg)
        return 200, msg

    async def _r_post_message(self, req: _Request) -> _Response:
        cid = int(req.params["cid"])
        if cid not in self._channels:
            return _error(404, 10003, "Unknown Channel")
        body: JSON = req.body if isinstance(req.body, dict) else {}
        nonce = body.get("nonce")
        if nonce is not None and (
            isinstance(nonce, bool)
            or not isinstance(nonce, int | str)
            or len(str(nonce)) > MAX_NONCE_LENGTH
        ):
            return _form_error(
                "nonce", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_NONCE_LENGTH} or fewer in length."
            )
        # With enforce_nonce Discord hands back the message the same author made with the
        # same nonce in the last few minutes, wherever it was posted, instead of a new one.
        key = (str(self.bot_id), str(nonce))
        known = self._nonces.get(key)
        if nonce is not None and body.get("enforce_nonce") and known is not None:
            message_id, made_at = known
            if time.monotonic() - made_at <= self.nonce_ttl:
                return 200, self._messages[message_id]
        channel = self._channels[cid]
        if channel["type"] == DM and int(channel["recipients"][0]["id"]) in self._dms_closed:
            return _error(403, 50007, "Cannot send messages to this user")
        status, msg = await self._create_bot_message(cid, body, req.files)
        if status != 200:
            return status, msg
        if nonce is not None:
            self._nonces[key] = (int(msg["id"]), time.monotonic())
        await self._echo("MESSAGE_CREATE", msg)
        return 200, msg

    def _apply_edit(self, msg: JSON, body: JSON, files: list[JSON]) -> _Response | None:
        if "content" in body:
            content = body["content"] or ""
            if len(content) > MAX_CONTENT_LENGTH:
                return _form_error(
                    "content",
                    "BASE_TYPE_MAX_LENGTH",
                    f"Must be {MAX_CONTENT_LENGTH} or fewer in length.",
                )
            msg["content"] = content
        for key in ("embeds", "components"):
            if key in body:
                msg[key] = list(body[key] or [])
        if "flags" in body and body["flags"] is not None:
            msg["flags"] = int(body["flags"]) | (msg["flags"] & FLAG_HAS_THREAD)
        if "attachments" in body or files:
            kept_ids = {str(a.get("id")) for a in body.get("attachments", [])}
            kept = [a for a in msg["attachments"] if a["id"] in kept_ids]
            msg["attachments"] = kept + self._attachments_from(files, body)
        if "allowed_mentions" in body:
            self._allowed_mentions[int(msg["id"])] = copy.deepcopy(body["allowed_mentions"])
        msg["edited_timestamp"] = _now_iso()
        return None

    async def _r_edit_message(self, req: _Request) -> _Response:
        msg = self._live_message(int(req.params["cid"]), int(req.params["mid"]))
        if msg is None:
            return _error(404, 10008, "Unknown Message")
        if msg["author"]["id"] != str(self.bot_id):
            return _error(403, 50005, "Cannot edit a message authored by another user")
        body: JSON = req.body if isinstance(req.body, dict) else {}
        problem = self._apply_edit(msg, body, req.files)
        if problem is not None:
            return problem
        await self._echo("MESSAGE_UPDATE", msg)
        return 200, msg

    async def _r_delete_message(self, req: _Request) -> _Response:
        cid, mid = int(req.params["cid"]), int(req.params["mid"])
        if self._live_message(cid, mid) is None:
            return _error(404, 10008, "Unknown Message")
        self._delete_message(cid, mid)
        if self.echo_bot_messages:
            await self.dispatch("MESSAGE_DELETE", self._delete_payload(cid, mid))
        return 204, None

    async def _r_bulk_delete(self, req: _Request) -> _Response:
        cid = int(req.params["cid"])
        body: JSON = req.body if isinstance(req.body, dict) else {}
        ids = [int(i) for i in body.get("messages", [])]
        for mid in ids:
            self._delete_message(cid, mid)
        data: JSON = {"ids": [str(i) for i in ids], "channel_id": str(cid)}
        guild_id = self._guild_id_of(cid)
        if guild_id is not None:
            data["guild_id"] = str(guild_id)
        await self.dispatch("MESSAGE_DELETE_BULK", data)
        return 204, None

    async def _r_add_reaction(self, req: _Request) -> _Response:
        cid, mid = int(req.params["cid"]), int(req.params["mid"])
        if self._live_message(cid, mid) is None:
            return _error(404, 10008, "Unknown Message")
        await self._react(cid, mid, self.bot_id, _parse_emoji(req.params["emoji"]), True)
        return 204, None

    async def _r_remove_reaction(self, req: _Request) -> _Response:
        cid, mid = int(req.params["cid"]), int(req.params["mid"])
        if self._live_message(cid, mid) is None:
            return _error(404, 10008, "Unknown Message")
        uid = int(req.params.get("uid") or self.bot_id)
        await self._react(cid, mid, uid, _parse_emoji(req.params["emoji"]), False)
        return 204, None

    async def _r_thread_from_message(self, req: _Request) -> _Response:
        cid, mid = int(req.params["cid"]), int(req.params["mid"])
        guild_id = self._guild_id_of(cid) if cid in self._channels else None
        if guild_id is None:
            return _error(404, 10003, "Unknown Channel")
        if self._live_message(cid, mid) is None:
            return _error(404, 10008, "Unknown Message")
        if mid in self._channels:
            return _error(400, 160004, "A thread has already been created for this message")
        body: JSON = req.body if isinstance(req.body, dict) else {}
        parent_type = self._channels[cid]["type"]
        kind = ANNOUNCEMENT_THREAD if parent_type == GUILD_ANNOUNCEMENT else PUBLIC_THREAD
        thread = self._thread_payload(
            guild_id,
            mid,
            cid,
            str(body.get("name", "thread")),
            kind,
            self.bot_id,
            auto_archive_duration=int(body.get("auto_archive_duration") or 1440),
        )
        await self._register_thread(guild_id, thread, mid)
        return 201, thread

    async def _r_thread(self, req: _Request) -> _Response:
        cid = int(req.params["cid"])
        guild_id = self._guild_id_of(cid) if cid in self._channels else None
        if guild_id is None:
            return _error(404, 10003, "Unknown Channel")
        body: JSON = req.body if isinstance(req.body, dict) else {}
        parent = self._channels[cid]
        tid = self.next_id()
        archive = int(body.get("auto_archive_duration") or 1440)
        name = str(body.get("name", "thread"))
        if parent["type"] == GUILD_FORUM:
            starter = body.get("message")
            if not isinstance(starter, dict):
                return _form_error("message", "BASE_TYPE_REQUIRED", "This field is required")
            thread = self._thread_payload(
                guild_id, tid, cid, name, PUBLIC_THREAD, self.bot_id, auto_archive_duration=archive
            )
            thread["applied_tags"] = [str(t) for t in body.get("applied_tags", [])]
            self._channels[tid] = thread  # the starter message lives in the thread
            status, msg = await self._create_bot_message(tid, starter, req.files, message_id=tid)
            if status != 200:
                del self._channels[tid]
                return status, msg
            await self._register_thread(guild_id, thread, None)
            await self._echo("MESSAGE_CREATE", msg)
            return 201, {**thread, "message": msg}
        kind = int(body.get("type") or PRIVATE_THREAD)
        thread = self._thread_payload(
            guild_id, tid, cid, name, kind, self.bot_id, auto_archive_duration=archive
        )
        await self._register_thread(guild_id, thread, None)
        return 201, thread

    async def _r_channel_webhooks(self, req: _Request) -> _Response:
        cid = req.params["cid"]
        return 200, [w for w in self.webhooks.values() if w["channel_id"] == cid]

    async def _r_create_webhook(self, req: _Request) -> _Response:
        cid = int(req.params["cid"])
        if cid not in self._channels:
            return _error(404, 10003, "Unknown Channel")
        body: JSON = req.body if isinstance(req.body, dict) else {}
        name = str(body.get("name") or "")
        if not name:
            return _form_error("name", "BASE_TYPE_REQUIRED", "This field is required")
        wid = self.next_id()
        webhook: JSON = {
            "id": str(wid),
            "type": 1,
            "guild_id": self._channels[cid].get("guild_id"),
            "channel_id": str(cid),
            "name": name,
            "avatar": None,
            "token": f"wtoken-{uuid.uuid4().hex}",
            "application_id": str(self.application_id),
            "user": copy.deepcopy(self.bot_user),
        }
        self.webhooks[wid] = webhook
        return 200, webhook

    async def _r_get_webhook(self, req: _Request) -> _Response:
        webhook = self.webhooks.get(int(req.params["wid"]))
        if webhook is None or ("token" in req.params and req.params["token"] != webhook["token"]):
            return _error(404, 10015, "Unknown Webhook")
        return 200, webhook

    async def _r_get_guild(self, req: _Request) -> _Response:
        guild = self._guilds.get(int(req.params["gid"]))
        if guild is None:
            return _error(404, 10004, "Unknown Guild")
        payload = self._guild_create_payload(guild)
        for key in ("channels", "threads", "members", "presences", "voice_states", "joined_at"):
            payload.pop(key, None)
        return 200, payload

    async def _r_guild_channels(self, req: _Request) -> _Response:
        guild = self._guilds.get(int(req.params["gid"]))
        if guild is None:
            return _error(404, 10004, "Unknown Guild")
        channels = [self._channels[c] for c in guild.channel_ids]
        return 200, [c for c in channels if c["type"] not in THREAD_TYPES]

    async def _r_guild_roles(self, req: _Request) -> _Response:
        guild = self._guilds.get(int(req.params["gid"]))
        if guild is None:
            return _error(404, 10004, "Unknown Guild")
        return 200, list(guild.roles.values())

    async def _r_guild_members(self, req: _Request) -> _Response:
        guild = self._guilds.get(int(req.params["gid"]))
        if guild is None:
            return _error(404, 10004, "Unknown Guild")
        limit = min(max(int(req.query.get("limit", "1")), 1), 1000)
        after = int(req.query.get("after", "0"))
        ids = sorted(u for u in guild.members if u > after)[:limit]
        return 200, [self._member_payload(guild, u) for u in ids]

    async def _r_guild_member(self, req: _Request) -> _Response:
        guild = self._guilds.get(int(req.params["gid"]))
        if guild is None:
            return _error(404, 10004, "Unknown Guild")
        uid = int(req.params["uid"])
        if uid not in guild.members:
            return _error(404, 10007, "Unknown Member")
        return 200, self._member_payload(guild, uid)

    # --- interactions & webhooks

    def _interaction_for(self, token: str) -> InteractionRecord | None:
        iid = self._interaction_tokens.get(token)
        return self.interactions.get(iid) if iid is not None else None

    async def _r_callback(self, req: _Request) -> _Response:
        record = self.interactions.get(int(req.params["iid"]))
        if record is None or record.token != req.params["token"] or self._ack_expired(record):
            # Also what Discord answers once the interaction's 3 seconds are over.
            return _error(404, 10062, "Unknown interaction")
        if record.responses:
            return _error(400, 40060, "Interaction has already been acknowledged.")
        body: JSON = req.body if isinstance(req.body, dict) else {}
        record.responses.append(copy.deepcopy(body))
        kind = int(body.get("type", 0))
        data: JSON = body.get("data") or {}
        flags = int(data.get("flags") or 0)
        resource: JSON = {"type": kind}
        message: JSON | None = None
        if kind in (4, 5):
            metadata = {
                "id": str(record.id),
                "type": 2,
                "user": copy.deepcopy(self._users[record.user_id]),
                "authorizing_integration_owners": record.payload.get(
                    "authorizing_integration_owners", {}
                ),
                "name": record.command_name,
                "command_type": 1,
            }
            extra = {
                "webhook_id": str(self.application_id),
                "application_id": str(self.application_id),
                "interaction_metadata": metadata,
            }
            if kind == 4:
                status, created = await self._create_bot_message(
                    record.channel_id,
                    data,
                    req.files,
                    message_type=MESSAGE_CHAT_INPUT_COMMAND,
                    extra=extra,
                )
                if status != 200:
                    record.responses.clear()
                    return status, created
                message = created
            else:
                message = self._build_message(
                    record.channel_id,
                    self.bot_user,
                    "",
                    message_type=MESSAGE_CHAT_INPUT_COMMAND,
                    flags=FLAG_LOADING | flags,
                    extra=extra,
                )
                self._store_message(message)
                self._bot_message_ids.append(int(message["id"]))
                self._allowed_mentions[int(message["id"])] = None
            record.original_message_id = int(message["id"])
            await self._echo("MESSAGE_CREATE", message)
            resource["message"] = message
        elif kind == 7 and isinstance(record.payload.get("message"), dict):
            target = self._messages.get(int(record.payload["message"]["id"]))
            if target is not None:
                self._apply_edit(target, data, req.files)
                await self._echo("MESSAGE_UPDATE", target)
                resource["message"] = target
        self._notify()
        if req.query.get("with_response") not in ("1", "true", "True"):
            return 204, None
        interaction: JSON = {
            "id": str(record.id),
            "type": 2,
            "response_message_loading": kind == 5,
            "response_message_ephemeral": bool(flags & FLAG_EPHEMERAL),
        }
        if message is not None:
            interaction["response_message_id"] = message["id"]
        return 200, {"interaction": interaction, "resource": resource}

    def _hook_message(self, req: _Request) -> tuple[JSON | None, _Response | None]:
        """Resolve ``/webhooks/{id}/{token}/messages/{mid|@original}``."""
        record = self._interaction_for(req.params["token"])
        raw_mid = req.params["mid"]
        if record is not None:
            if self._token_expired(record):
                return None, _error(401, 50027, "Invalid Webhook Token")
            if raw_mid == "@original":
                if record.original_message_id is None:
                    return None, _error(404, 10008, "Unknown Message")
                mid = record.original_message_id
            else:
                mid = int(raw_mid)
                if mid not in record.followup_ids and mid != record.original_message_id:
                    return None, _error(404, 10008, "Unknown Message")
        else:
            webhook = self.webhooks.get(int(req.params["wid"]))
            if webhook is None or webhook["token"] != req.params["token"]:
                return None, _error(404, 10015, "Unknown Webhook")
            if raw_mid == "@original":
                return None, _error(404, 10008, "Unknown Message")
            mid = int(raw_mid)
            if self._messages.get(mid, {}).get("webhook_id") != webhook["id"]:
                return None, _error(404, 10008, "Unknown Message")
        msg = self._messages.get(mid)
        if msg is None or mid in self._deleted:
            return None, _error(404, 10008, "Unknown Message")
        return msg, None

    async def _r_get_hook_msg(self, req: _Request) -> _Response:
        msg, problem = self._hook_message(req)
        if msg is None:
            assert problem is not None
            return problem
        return 200, msg

    async def _r_edit_hook_msg(self, req: _Request) -> _Response:
        msg, problem = self._hook_message(req)
        if msg is None:
            assert problem is not None
            return problem
        body: JSON = req.body if isinstance(req.body, dict) else {}
        if msg["flags"] & FLAG_LOADING:
            msg["flags"] &= ~FLAG_LOADING
        edit_problem = self._apply_edit(msg, body, req.files)
        if edit_problem is not None:
            return edit_problem
        await self._echo("MESSAGE_UPDATE", msg)
        self._notify()
        return 200, msg

    async def _r_delete_hook_msg(self, req: _Request) -> _Response:
        msg, problem = self._hook_message(req)
        if msg is None:
            assert problem is not None
            return problem
        cid, mid = int(msg["channel_id"]), int(msg["id"])
        self._delete_message(cid, mid)
        if not msg["flags"] & FLAG_EPHEMERAL:
            await self.dispatch("MESSAGE_DELETE", self._delete_payload(cid, mid))
        return 204, None

    async def _r_execute_webhook(self, req: _Request) -> _Response:
        body: JSON = req.body if isinstance(req.body, dict) else {}
        wait = req.query.get("wait", "false").lower() in ("1", "true")
        record = self._interaction_for(req.params["token"])
        if record is not None:  # interaction followup
            if self._token_expired(record):
                return _error(401, 50027, "Invalid Webhook Token")
            if not record.responses:
                return _error(404, 10015, "Unknown Webhook")
            status, msg = await self._create_bot_message(
                record.channel_id,
                body,
                req.files,
                extra={
                    "webhook_id": str(self.application_id),
                    "application_id": str(self.application_id),
                },
            )
            if status != 200:
                return status, msg
            record.followup_ids.append(int(msg["id"]))
            await self._echo("MESSAGE_CREATE", msg)
            return (200, msg) if wait else (204, None)
        webhook = self.webhooks.get(int(req.params["wid"]))
        if webhook is None or webhook["token"] != req.params["token"]:
            return _error(404, 10015, "Unknown Webhook")
        channel_id = int(webhook["channel_id"])
        if "thread_id" in req.query:
            channel_id = int(req.query["thread_id"])
            if self._channels.get(channel_id, {}).get("parent_id") != webhook["channel_id"]:
                return _error(404, 10003, "Unknown Channel")
        author: JSON = {
            "id": webhook["id"],
            "username": str(body.get("username") or webhook["name"]),
            "avatar": None,
            "discriminator": "0000",
            "global_name": None,
            "bot": True,
            "public_flags": 0,
            "flags": 0,
        }
        status, msg = await self._create_bot_message(
            channel_id,
            body,
            req.files,
            author=author,
            extra={"webhook_id": webhook["id"], "application_id": webhook["application_id"]},
            webhook=True,
        )
        if status != 200:
            return status, msg
        if body.get("avatar_url"):
            msg["author"]["avatar_url"] = body["avatar_url"]
        await self.dispatch("MESSAGE_CREATE", self._gateway_message(msg))
        return (200, msg) if wait else (204, None)

    # --- application commands

    async def _r_get_commands(self, req: _Request) -> _Response:
        if int(req.params["app"]) != self.application_id:
            return _error(403, 20012, _NOT_YOUR_APP)
        gid = int(req.params["gid"]) if req.params.get("gid") else None
        return 200, self.commands.get(gid, [])

    async def _r_put_commands(self, req: _Request) -> _Response:
        if int(req.params["app"]) != self.application_id:
            return _error(403, 20012, _NOT_YOUR_APP)
        gid = int(req.params["gid"]) if req.params.get("gid") else None
        body = req.body if isinstance(req.body, list) else []
        existing = {(c["name"], c.get("type", 1)): c for c in self.commands.get(gid, [])}
        stored: list[JSON] = []
        for raw in body:
            command: JSON = {
                "type": 1,
                "options": [],
                "default_member_permissions": None,
                "dm_permission": True,
                "nsfw": False,
                "contexts": None,
                "integration_types": [0],
                "description_localizations": None,
                "name_localizations": None,
                **raw,
            }
            previous = existing.get((command["name"], command["type"]))
            command["id"] = previous["id"] if previous is not None else str(self.next_id())
            command["application_id"] = str(self.application_id)
            command["version"] = str(self.next_id())
            if gid is not None:
                command["guild_id"] = str(gid)
            stored.append(command)
        self.commands[gid] = stored
        return 200, stored


# --------------------------------------------------------------------------- discord.py glue


@contextlib.contextmanager
def patch_discord(fake: FakeDiscord) -> Iterator[None]:
    """Point ``discord.py``'s REST base and default gateway at ``fake``;
    restore both afterwards.  Patch before the client logs in."""
    import discord.gateway
    import discord.http

    old_base = discord.http.Route.BASE
    old_gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake.rest_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE = old_base
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = old_gateway


@contextlib.asynccontextmanager
async def running_client(
    fake: FakeDiscord, client: discord.Client, *, within: float = 5.0
) -> AsyncIterator[asyncio.Task[None]]:
    """Patch ``discord.py``, start ``client`` against ``fake`` and wait until it
    is ready (``on_ready``); on exit close it and restore the patch.  Yields
    the task running ``client.start``.  Build the client with
    ``guild_ready_timeout=0.05`` or readiness takes 2 s."""
    with patch_discord(fake):
        async with client:  # initialises client.loop / readiness event
            task = asyncio.get_running_loop().create_task(client.start(fake.token))
            ready = asyncio.get_running_loop().create_task(client.wait_until_ready())
            try:
                done, _ = await asyncio.wait(
                    {task, ready}, timeout=within, return_when=asyncio.FIRST_COMPLETED
                )
                if task in done:
                    task.result()  # re-raise the start() failure
                    raise RuntimeError("client.start() returned before becoming ready")
                if ready not in done:
                    raise TimeoutError(f"discord client not ready within {within}s")
                yield task
            finally:
                ready.cancel()
                await client.close()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, within)
