"""A loopback fake of the Telegram Bot API server for end-to-end bot tests.

The fake is an :mod:`aiohttp.web` application bound to ``127.0.0.1`` on an ephemeral port.
The *real* python-telegram-bot (PTB) ``Application``/``Bot`` talks to it over HTTP exactly as
it would talk to ``api.telegram.org``::

    async with FakeTelegramAPI(token=TOKEN, bot_username="copss_bot") as api:
        app = (
            ApplicationBuilder()
            .token(TOKEN)
            .base_url(api.base_url)
            .base_file_url(api.base_file_url)
            .build()
        )
        ...
        api.push_update(api.message_update(-1001, 42, "hello"))
        sent = await api.wait_for_sent_messages(1)

What it models (see the individual ``_m_*`` handlers for details):

* ``getUpdates`` long polling with ``offset`` confirmation, ``limit``, ``timeout``, the
  ``allowed_updates`` default (``chat_member``, ``message_reaction`` and
  ``message_reaction_count`` are only delivered when explicitly requested) and the
  409 conflict a second concurrent poller causes;
* a message store with one ``message_id`` counter per chat shared by user and bot messages;
* ``sendMessage``/``editMessageText``/``deleteMessage`` with Telegram's usual 400 errors; the
  4096 limit counts UTF-16 code units of the text after parsing entities (``parse_mode``
  ``HTML``: tags do not count, escapes count as the character), and HTML with a tag Telegram
  does not know, an unbalanced tag or an unescaped ``<`` is refused ("can't parse entities");
* chat member statuses per chat (``getChatMember`` answers "chat not found" / "user not
  found" like Telegram, and ``left`` for a known user who is not in the chat), bot commands,
  reactions, chat migration;
* ``setWebhook`` with Telegram's checks (public https URL on 80/88/443/8443, ``secret_token``
  of 1-256 characters ``A-Za-z0-9_-``) and :meth:`FakeTelegramAPI.deliver_webhook`, which
  calls the bot's webhook server the way Telegram does;
* fault injection (429, 5xx, slow answers, dropped connections) and an optional rate-limit
  enforcement mode that answers 429 like Telegram's flood control.

PTB encodes parameters as ``application/x-www-form-urlencoded`` (``multipart/form-data`` when a
file is uploaded): ``str`` values are sent verbatim, everything else JSON-encoded (ints as
``"123"``, objects as JSON text).  The fake decodes values accordingly and also accepts
``application/json`` bodies and query-string parameters.

Nothing here touches the network beyond the loopback interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import ipaddress
import json
import math
import re
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from tests.fakes.telegram_html import HTMLParseError, parse_html

JSONDict: TypeAlias = dict[str, Any]
"""A decoded JSON object."""

MethodHandler: TypeAlias = Callable[[JSONDict], Awaitable[Any]]
"""An API method implementation: receives the decoded parameters, returns the ``result``."""

DEFAULT_TOKEN = "123456789:AAFakeTokenForTestsOnly_xxxxxxxxxxxxx"
"""A syntactically valid bot token; its numeric prefix becomes the bot's user id."""

GROUP_ANONYMOUS_BOT_ID = 1087968824
"""``from.id`` Telegram uses for messages sent by anonymous group administrators."""

CHANNEL_BOT_ID = 136817688
"""``from.id`` Telegram uses for messages sent on behalf of a channel."""

MAX_MESSAGE_LENGTH = 4096
"""Maximum length of a text message accepted by ``sendMessage``/``editMessageText``."""

UPDATES_NOT_DELIVERED_BY_DEFAULT = frozenset(
    {"chat_member", "message_reaction", "message_reaction_count"}
)
"""Update types Telegram only delivers when listed explicitly in ``allowed_updates``."""

MESSAGE_UPDATE_KEYS = frozenset(
    {
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_message",
        "edited_business_message",
    }
)
"""Update fields that carry a Message object (stored in the fake's message store)."""

MemberStatus: TypeAlias = Literal[
    "creator", "owner", "administrator", "member", "restricted", "left", "kicked", "banned"
]
"""Chat member statuses accepted by :meth:`FakeTelegramAPI.set_member_status`."""

_STATUS_ALIASES = {"owner": "creator", "banned": "kicked"}
_VALID_STATUSES = frozenset({"creator", "administrator", "member", "restricted", "left", "kicked"})

# Parameters whose value is free text: never JSON-decoded even when they look like JSON.
_TEXT_PARAMS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "title",
        "description",
        "short_description",
        "name",
        "custom_title",
        "emoji",
        "query",
        "url",
        "language_code",
        "message_effect_id",
        "business_connection_id",
        "inline_message_id",
        "callback_query_id",
        "question",
        "explanation",
        "address",
        "first_name",
        "last_name",
        "phone_number",
        "vcard",
        "payload",
        "currency",
        "start_parameter",
        "game_short_name",
        "action",
        "invite_link",
        "secret_token",
        "ip_address",
        "file_id",
        "sticker",
        "photo",
        "document",
        "video",
        "audio",
        "voice",
        "animation",
        "video_note",
        "thumbnail",
        "tag",
    }
)

_COMMAND_RE = re.compile(r"(?<![\w/@])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![\w@])")
_MENTION_RE = re.compile(r"(?<![\w@/])@[A-Za-z0-9_]{5,32}(?!\w)")
_BOT_COMMAND_NAME_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_SECRET_TOKEN_CHARS_RE = re.compile(r"[A-Za-z0-9_-]*")

WEBHOOK_PORTS = frozenset({80, 88, 443, 8443})
"""The only ports ``setWebhook`` accepts."""

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
"""The header in which Telegram sends a webhook's ``secret_token`` back on every call."""


# --------------------------------------------------------------------------------------------
# Public value types
# --------------------------------------------------------------------------------------------


@dataclass
class Call:
    """One HTTP request the bot made to the fake.

    Attributes:
        method: Canonical Bot API method name (``"sendMessage"``), or the name as sent when the
            method is unknown.
        params: Decoded parameters (ints/objects JSON-decoded, free text kept as ``str``).
        at: :func:`time.monotonic` timestamp of the request's arrival.
        http_method: ``"POST"`` or ``"GET"``.
        raw: The parameters exactly as received (all strings for form-encoded requests).
        files: Uploaded multipart files by field name.
        status: HTTP status answered; ``None`` while the request is in flight and for dropped
            connections.
        response: The JSON body answered (``None`` while in flight / dropped).
        fault: ``repr`` of the injected fault or ``"rate_limit"``, if one was applied.
        content_type: The request's Content-Type (PTB sends form-urlencoded, or multipart
            when uploading files).
        peer: The client's (host, port): tells apart the connections, and so the processes,
            that call (several copss processes on one bot).
    """

    method: str
    params: JSONDict
    at: float
    http_method: str = "POST"
    raw: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    status: int | None = None
    response: JSONDict | None = None
    fault: str | None = None
    content_type: str = ""
    peer: tuple[str, int] | None = None

    @property
    def ok(self) -> bool:
        """Whether the call was answered with ``{"ok": true, ...}``."""
        return self.response is not None and bool(self.response.get("ok"))


@dataclass(frozen=True)
class RetryAfter:
    """Fault: answer HTTP 429 with ``parameters.retry_after = seconds``."""

    seconds: int


@dataclass(frozen=True)
class ServerError:
    """Fault: answer a 5xx status with a JSON error body."""

    status: int = 500
    description: str | None = None


@dataclass(frozen=True)
class Slow:
    """Fault: sleep ``seconds`` before handling the request normally."""

    seconds: float


@dataclass(frozen=True)
class Drop:
    """Fault: close the TCP connection without sending any response."""


@dataclass(frozen=True)
class ErrorResponse:
    """Fault: answer an arbitrary Bot API error (e.g. 403 "Forbidden: bot was blocked...")."""

    status: int
    description: str
    parameters: JSONDict | None = None


Fault: TypeAlias = RetryAfter | ServerError | Slow | Drop | ErrorResponse
"""Anything accepted by :meth:`FakeTelegramAPI.inject`."""


class TelegramAPIError(Exception):
    """Raised by method handlers to answer a Bot API error.

    Custom handlers registered with :meth:`FakeTelegramAPI.register_method` may raise it too.
    """

    def __init__(self, status: int, description: str, parameters: JSONDict | None = None) -> None:
        super().__init__(f"{status}: {description}")
        self.status = status
        self.description = description
        self.parameters = parameters

    def payload(self) -> JSONDict:
        """The JSON body Telegram would answer for this error."""
        body: JSONDict = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


@dataclass(frozen=True)
class RateLimits:
    """Flood-control thresholds enforced by :meth:`FakeTelegramAPI.enforce_rate_limits`.

    Attributes:
        per_chat_per_sec: Sustained message rate allowed in a single chat (token bucket).
        per_chat_burst: Bucket capacity, i.e. messages allowed back-to-back in one chat.
        per_group_per_min: Messages allowed per sliding 60 s window in one group (chat id < 0).
        global_per_sec: Messages allowed per sliding 1 s window over all chats.
        tolerance: Seconds of scheduling jitter forgiven on every check.
        methods: Canonical method names subject to the limits.
    """

    per_chat_per_sec: float
    per_chat_burst: float
    per_group_per_min: int
    global_per_sec: int
    tolerance: float
    methods: frozenset[str]
    #: Divides every window (1 s per chat, 60 s per group, 1 s overall) so tests can check
    #: pacing at Telegram's ratios without waiting minutes.
    time_scale: float = 1.0
    #: Flood control escalation (None: off). Like Telegram, a chat (or the bot as a whole)
    #: that was answered 429 is then blocked for the ``retry_after`` it was told (divided by
    #: ``time_scale``, so a client that waits what it was told never runs into the block);
    #: a request in that time, or another offence within ``cooldown`` seconds (divided by
    #: ``time_scale``) of the last, multiplies the first offence's ``retry_after`` by this
    #: factor per strike, up to ``max_retry_after``.
    escalation: float | None = None
    cooldown: float = 60.0
    max_retry_after: int = 3600


@dataclass(frozen=True)
class RateLimitViolation:
    """One request refused with 429 by the rate-limit enforcement mode."""

    kind: Literal["per_chat", "per_group", "global"]
    method: str
    chat_id: int
    at: float
    retry_after: int
    #: The request came while a flood wait it had been told about was still running.
    during_wait: bool = False
    #: Earlier offences that escalated this ``retry_after`` (0: not escalated).
    strikes: int = 0


@dataclass
class _FloodWait:
    """A chat's (or the bot's) flood wait under escalating flood control."""

    until: float = 0.0
    strikes: int = 0
    last: float = -math.inf
    base: int = 1  # the retry_after of the first offence, which strikes multiply


DEFAULT_RATE_LIMITED_METHODS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendAudio",
        "sendDocument",
        "sendVideo",
        "sendAnimation",
        "sendVoice",
        "sendVideoNote",
        "sendMediaGroup",
        "sendLocation",
        "sendVenue",
        "sendContact",
        "sendPoll",
        "sendDice",
        "sendSticker",
        "copyMessage",
        "copyMessages",
        "forwardMessage",
        "forwardMessages",
    }
)
"""Methods counted by the rate-limit enforcement mode unless overridden."""


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def entity_text(text: str, parse_mode: str | None) -> str:
    """The text Telegram keeps of a message sent with ``parse_mode`` (what its length limit
    counts); raises :class:`TelegramAPIError` with Telegram's "can't parse entities" text
    where Telegram cannot parse the HTML (see :mod:`tests.fakes.telegram_html`)."""
    if (parse_mode or "").upper() != "HTML":
        return text  # Markdown modes are not modelled: their markup counts (stricter)
    try:
        return parse_html(text).text
    except HTMLParseError as exc:
        raise TelegramAPIError(400, f"Bad Request: can't parse entities: {exc}") from None


def _utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (Telegram's unit for entity offsets)."""
    return len(text.encode("utf-16-le")) // 2


def detect_entities(text: str) -> list[JSONDict]:
    """Return the ``bot_command`` and ``mention`` entities Telegram would attach to ``text``.

    Offsets and lengths are in UTF-16 code units, like Telegram's.
    """
    found: list[JSONDict] = []
    for kind, regex in (("bot_command", _COMMAND_RE), ("mention", _MENTION_RE)):
        for match in regex.finditer(text):
            found.append(
                {
                    "type": kind,
                    "offset": _utf16_len(text[: match.start()]),
                    "length": _utf16_len(match.group()),
                }
            )
    found.sort(key=lambda entity: int(entity["offset"]))
    return found


def _decode_value(key: str, value: str) -> Any:
    """Decode one form-encoded parameter the way PTB encoded it."""
    if key in _TEXT_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _reaction_list(items: Iterable[str | Mapping[str, Any]]) -> list[JSONDict]:
    """Turn emoji strings (or ready ReactionType dicts) into ReactionType dicts."""
    out: list[JSONDict] = []
    for item in items:
        if isinstance(item, str):
            out.append({"type": "emoji", "emoji": item})
        else:
            out.append(dict(item))
    return out


def _strip_nested_reply(message: Mapping[str, Any]) -> JSONDict:
    """Copy of ``message`` suitable for embedding as ``reply_to_message`` (no nesting)."""
    nested = copy.deepcopy(dict(message))
    nested.pop("reply_to_message", None)
    return nested


def _update_kind(update: Mapping[str, Any]) -> str:
    """The update type, i.e. the name of its only field besides ``update_id``."""
    for key in update:
        if key != "update_id":
            return key
    return ""


# --------------------------------------------------------------------------------------------
# The fake server
# --------------------------------------------------------------------------------------------


class FakeTelegramAPI:
    """In-process fake of the Telegram Bot API server.

    Args:
        token: Token the bot must use; requests with another token get 401.
        bot_username: ``username`` of the bot user returned by ``getMe``.
        bot_first_name: ``first_name`` of the bot user.
        bot_id: User id of the bot; defaults to the numeric prefix of ``token``.
        host: Interface to bind (loopback only by default).
        strict_allowed_updates: Emulate Telegram's ``allowed_updates`` filtering; updates of a
            type the bot did not ask for are dropped at delivery time (kept in
            :attr:`filtered_updates`).
        clock: Wall clock used for ``date`` fields (seconds since the epoch).
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        bot_username: str = "copss_bot",
        bot_first_name: str = "copss",
        bot_id: int | None = None,
        host: str = "127.0.0.1",
        strict_allowed_updates: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token = token
        prefix = token.split(":", 1)[0]
        default_id = int(prefix) if prefix.isdigit() else 1
        self.bot_id: int = bot_id if bot_id is not None else default_id
        self.bot_username = bot_username
        self.bot_first_name = bot_first_name
        self.host = host
        self.strict_allowed_updates = strict_allowed_updates
        self._clock = clock

        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._closing = False

        # change notification (a broadcast event that is replaced after every change)
        self._changed = asyncio.Event()

        # recording
        self.calls: list[Call] = []
        self.filtered_updates: list[JSONDict] = []
        self.deleted_messages: list[tuple[int, int]] = []
        self.reactions: list[JSONDict] = []

        # updates
        self._pending: list[JSONDict] = []
        self._next_update_id = 1
        self._confirmed_offset = 0
        self._deliveries: Counter[int] = Counter()
        self._allowed_updates: list[str] | None = None
        self._poll_generation = 0
        self._webhook_url = ""
        self._webhook_secret: str | None = None
        #: (update_id, HTTP status answered) of every :meth:`deliver_webhook` call.
        self.webhook_deliveries: list[tuple[int, int]] = []

        # world state
        self._chats: dict[int, JSONDict] = {}
        self._users: dict[int, JSONDict] = {}
        self._members: dict[tuple[int, int], JSONDict] = {}
        self._messages: dict[tuple[int, int], JSONDict] = {}
        self._next_message_id: dict[int, int] = {}
        self._sent: list[JSONDict] = []
        self._commands: dict[tuple[str, str], list[JSONDict]] = {}
        self._migrated: dict[int, int] = {}
        self._files: dict[str, tuple[JSONDict, bytes]] = {}

        # faults and flood control
        self._faults: dict[str, deque[Fault]] = {}
        self._rate_limits: RateLimits | None = None
        self._chat_buckets: dict[int, tuple[float, float]] = {}
        self._group_sends: dict[int, deque[float]] = {}
        self._global_sends: deque[float] = deque()
        self.rate_limit_violations: int = 0
        self.rate_limit_log: list[RateLimitViolation] = []
        self._flood_waits: dict[int | str, _FloodWait] = {}
        self._parse_modes: dict[tuple[int, int], str | None] = {}

        self._methods: dict[str, tuple[str, MethodHandler]] = {}
        for name, handler in (
            ("getMe", self._m_get_me),
            ("logOut", self._m_true),
            ("close", self._m_true),
            ("getUpdates", self._m_get_updates),
            ("setWebhook", self._m_set_webhook),
            ("deleteWebhook", self._m_delete_webhook),
            ("getWebhookInfo", self._m_get_webhook_info),
            ("sendMessage", self._m_send_message),
            ("editMessageText", self._m_edit_message_text),
            ("deleteMessage", self._m_delete_message),
            ("deleteMessages", self._m_delete_messages),
            ("setMessageReaction", self._m_set_message_reaction),
            ("sendChatAction", self._m_true),
            ("answerCallbackQuery", self._m_true),
            ("pinChatMessage", self._m_true),
            ("unpinChatMessage", self._m_true),
            ("unpinAllChatMessages", self._m_true),
            ("getChat", self._m_get_chat),
            ("getChatMember", self._m_get_chat_member),
            ("getChatAdministrators", self._m_get_chat_administrators),
            ("leaveChat", self._m_leave_chat),
            ("setMyCommands", self._m_set_my_commands),
            ("getMyCommands", self._m_get_my_commands),
            ("deleteMyCommands", self._m_delete_my_commands),
            ("getFile", self._m_get_file),
        ):
            self.register_method(name, handler)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind ``host`` on an ephemeral port and start serving."""
        if self._runner is not None:
            raise RuntimeError("FakeTelegramAPI already started")
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_route("GET", "/file/bot{token}/{file_path:.+}", self._handle_file)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, 0)
        await site.start()
        self._runner = runner
        self._closing = False
        self._port = int(runner.addresses[0][1])

    async def close(self) -> None:
        """Wake pending long polls and stop the server (idempotent)."""
        self._closing = True
        self._notify()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> FakeTelegramAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        """TCP port the fake listens on (only after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("FakeTelegramAPI not started")
        return self._port

    @property
    def base_url(self) -> str:
        """Value for ``ApplicationBuilder().base_url(...)``: ``http://127.0.0.1:PORT/bot``."""
        return f"http://{self.host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        """Value for ``ApplicationBuilder().base_file_url(...)``."""
        return f"http://{self.host}:{self.port}/file/bot"

    @property
    def bot_user(self) -> JSONDict:
        """The bot's User object (as found in ``from`` of its messages)."""
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_first_name,
            "username": self.bot_username,
        }

    # ------------------------------------------------------------------ extension points

    def register_method(
        self, name: str, handler: Callable[[JSONDict], Awaitable[Any] | Any]
    ) -> None:
        """Add or replace the implementation of API method ``name`` (case-insensitive).

        ``handler`` receives the decoded parameters and returns the ``result`` (sync or async);
        it may raise :class:`TelegramAPIError` to answer an error.
        """

        async def wrapper(params: JSONDict) -> Any:
            result = handler(params)
            if isinstance(result, Awaitable):
                return await result
            return result

        self._methods[name.lower()] = (name, wrapper)

    # ------------------------------------------------------------------ world state setup

    def add_chat(
        self,
        chat_id: int,
        chat_type: str = "supergroup",
        *,
        title: str | None = None,
        username: str | None = None,
        first_name: str | None = None,
        is_forum: bool | None = None,
    ) -> JSONDict:
        """Create or update the Chat object for ``chat_id``; returns a copy of it."""
        chat: JSONDict = {"id": chat_id, "type": chat_type}
        old = self._chats.get(chat_id, {})
        if chat_type == "private":
            user = self._users.get(chat_id, {})
            chat["first_name"] = (
                first_name or old.get("first_name") or user.get("first_name", f"User {chat_id}")
            )
        else:
            chat["title"] = title or old.get("title") or f"Chat {chat_id}"
        name = username if username is not None else old.get("username")
        if name:
            chat["username"] = name
        forum = is_forum if is_forum is not None else old.get("is_forum")
        if forum and chat_type == "supergroup":
            chat["is_forum"] = True
        self._chats[chat_id] = chat
        return dict(chat)

    def add_user(
        self,
        user_id: int,
        first_name: str = "Alice",
        *,
        username: str | None = None,
        last_name: str | None = None,
        is_bot: bool = False,
        language_code: str | None = None,
    ) -> JSONDict:
        """Create or update the User object for ``user_id``; returns a copy of it."""
        user: JSONDict = {"id": user_id, "is_bot": is_bot, "first_name": first_name}
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        self._users[user_id] = user
        return dict(user)

    def set_member_status(
        self, chat_id: int, user_id: int, status: MemberStatus | str, **fields: Any
    ) -> None:
        """Set what ``getChatMember(chat_id, user_id)`` answers.

        ``status`` is one of ``creator`` (alias ``owner``), ``administrator``, ``member``,
        ``restricted``, ``left``, ``kicked`` (alias ``banned``).  ``fields`` override the
        generated ChatMember fields, e.g. ``can_delete_messages=False`` or ``custom_title="x"``.
        Users become members of a group by posting in it (see :meth:`push_update`); anyone
        else is ``left`` there, except that the bot is a member wherever it is not set
        otherwise.  Setting the bot itself to ``left`` or ``kicked`` makes ``sendMessage`` to
        that chat fail with 403.
        """
        canonical = _STATUS_ALIASES.get(status, status)
        if canonical not in _VALID_STATUSES:
            raise ValueError(f"unknown chat member status {status!r}")
        self._members[(chat_id, user_id)] = {"status": canonical, **fields}

    def member_status(self, chat_id: int, user_id: int) -> str:
        """The current status of ``user_id`` in ``chat_id``: as set or as joined by posting;
        otherwise ``member`` for the bot and for the user of a private chat, ``left`` for
        everyone else."""
        entry = self._members.get((chat_id, user_id))
        if entry is not None:
            return str(entry["status"])
        if user_id == self.bot_id or user_id == chat_id:
            return "member"
        return "left"

    def migrate_chat(self, old_id: int, new_id: int) -> None:
        """Upgrade group ``old_id`` to supergroup ``new_id``.

        Afterwards any method called with ``chat_id=old_id`` answers 400 with
        ``parameters.migrate_to_chat_id = new_id`` (PTB raises ``ChatMigrated``).
        """
        self._migrated[old_id] = new_id
        old = self._chats.get(old_id, {})
        self.add_chat(new_id, "supergroup", title=old.get("title"))
        for (chat_id, user_id), member in list(self._members.items()):
            if chat_id == old_id:
                self._members[(new_id, user_id)] = dict(member)

    def add_file(self, file_id: str, content: bytes, *, file_path: str | None = None) -> JSONDict:
        """Make ``content`` downloadable via ``getFile(file_id)``; returns the File dict."""
        path = file_path or f"documents/{file_id}"
        info: JSONDict = {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(content),
            "file_path": path,
        }
        self._files[file_id] = (info, content)
        return dict(info)

    # ------------------------------------------------------------------ faults & flood control

    def inject(self, method: str, fault: Fault, *, times: int = 1) -> None:
        """Apply ``fault`` to the next ``times`` calls of ``method``.

        Faults queue up per method (FIFO).  ``method="*"`` matches any method that has no
        specific fault queued.
        """
        key = "*" if method == "*" else method.lower()
        queue = self._faults.setdefault(key, deque())
        queue.extend([fault] * times)

    def pending_faults(self, method: str) -> int:
        """How many injected faults are still queued for ``method``."""
        return len(self._faults.get("*" if method == "*" else method.lower(), ()))

    def clear_faults(self) -> None:
        """Forget all queued faults."""
        self._faults.clear()

    def enforce_rate_limits(
        self,
        per_chat_per_sec: float = 1.0,
        per_group_per_min: int = 20,
        global_per_sec: int = 30,
        *,
        per_chat_burst: float = 1.0,
        tolerance: float = 0.05,
        methods: Iterable[str] | None = None,
        time_scale: float = 1.0,
        escalation: float | None = None,
        cooldown: float = 60.0,
        max_retry_after: int = 3600,
    ) -> None:
        """Answer 429 (with ``retry_after``) when the bot exceeds Telegram's flood limits.

        Limits (defaults follow Telegram's bot FAQ): at most ``per_chat_per_sec`` messages per
        second in one chat (token bucket of capacity ``per_chat_burst``), at most
        ``per_group_per_min`` per sliding minute in one group, at most ``global_per_sec`` per
        sliding second overall.  Every refused request increments
        :attr:`rate_limit_violations` and is logged in :attr:`rate_limit_log`.  Refused
        requests do not consume quota.

        With ``escalation`` (a factor > 1) flood control escalates like Telegram's under
        sustained flooding: a chat answered 429 (or every chat, after the overall limit) is
        blocked for the ``retry_after`` it was told; a request during that wait, or another
        offence within ``cooldown`` seconds of the last, is refused with ``retry_after``
        multiplied by ``escalation`` per strike (up to ``max_retry_after``). Windows and waits
        are divided by ``time_scale``; ``retry_after`` is whole seconds, as on Telegram.
        """
        self._rate_limits = RateLimits(
            per_chat_per_sec=per_chat_per_sec,
            per_chat_burst=per_chat_burst,
            per_group_per_min=per_group_per_min,
            global_per_sec=global_per_sec,
            tolerance=tolerance,
            methods=frozenset(methods) if methods is not None else DEFAULT_RATE_LIMITED_METHODS,
            time_scale=time_scale,
            escalation=escalation,
            cooldown=cooldown,
            max_retry_after=max_retry_after,
        )
        self._flood_waits.clear()
        self._chat_buckets.clear()
        self._group_sends.clear()
        self._global_sends.clear()

    def disable_rate_limits(self) -> None:
        """Turn the rate-limit enforcement mode off."""
        self._rate_limits = None

    # ------------------------------------------------------------------ traffic injection

    def push_update(self, update: JSONDict) -> int:
        """Queue ``update`` for ``getUpdates`` and return its newly assigned ``update_id``.

        ``update["update_id"]`` is set in place.  Messages carried by the update are stored in
        the message store (so the bot can reply to them) and their chat/user registered.
        """
        update_id = self._next_update_id
        self._next_update_id += 1
        update["update_id"] = update_id
        for key in MESSAGE_UPDATE_KEYS & update.keys():
            self._store_incoming_message(update[key])
        self._pending.append(copy.deepcopy(update))
        self._notify()
        return update_id

    async def deliver_webhook(self, update: JSONDict, via: str) -> int:
        """Send ``update`` to the registered webhook the way Telegram does: a JSON POST with
        the registered ``secret_token`` in :data:`SECRET_HEADER`.  ``via`` is the address of
        the bot's local server (``http://127.0.0.1:PORT``), standing in for the reverse proxy
        that receives the public https URL: the request goes to ``via`` plus the URL's path.
        Assigns ``update_id`` and stores the carried message like :meth:`push_update`; returns
        the HTTP status the bot answered (also kept in :attr:`webhook_deliveries`)."""
        if not self._webhook_url:
            raise RuntimeError("FakeTelegramAPI: no webhook is set")
        update_id = self._next_update_id
        self._next_update_id += 1
        update["update_id"] = update_id
        for key in MESSAGE_UPDATE_KEYS & update.keys():
            self._store_incoming_message(update[key])
        parts = urlsplit(self._webhook_url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        headers = {SECRET_HEADER: self._webhook_secret} if self._webhook_secret else {}
        async with (
            aiohttp.ClientSession() as http,
            http.post(via.rstrip("/") + path, json=update, headers=headers) as answer,
        ):
            status = answer.status
        self.webhook_deliveries.append((update_id, status))
        self._notify()
        return status

    @property
    def webhook_url(self) -> str:
        """The URL registered with ``setWebhook`` (empty when none)."""
        return self._webhook_url

    def push_message(self, chat_id: int, user_id: int, text: str, **kwargs: Any) -> JSONDict:
        """Shortcut for ``push_update(message_update(...))``; returns the update dict."""
        update = self.message_update(chat_id, user_id, text, **kwargs)
        self.push_update(update)
        return update

    def message_update(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        *,
        chat_type: str = "supergroup",
        message_id: int | None = None,
        reply_to_message_id: int | None = None,
        message_thread_id: int | None = None,
        first_name: str = "Alice",
        username: str | None = None,
        sender_chat: int | Mapping[str, Any] | None = None,
        is_topic_message: bool | None = None,
        chat_title: str | None = None,
        entities: Sequence[Mapping[str, Any]] | None = None,
        date: int | None = None,
    ) -> JSONDict:
        """Build (do not push) an update carrying a user's text message.

        ``message_id`` defaults to the chat's next id (shared with bot messages).  ``entities``
        defaults to auto-detected ``bot_command``/``mention`` entities; pass ``[]`` for none.
        ``sender_chat`` (an id or Chat dict) makes it a message sent on behalf of a chat:
        ``from`` becomes GroupAnonymousBot when it is the chat itself, Channel_Bot otherwise.
        ``chat_type="channel"`` yields a ``channel_post`` update without ``from``.
        """
        chat = self._ensure_chat(chat_id, chat_type, title=chat_title, first_name=first_name)
        # Whoever sends as a chat stays hidden: Telegram (and so the fake) learns no user.
        hidden = sender_chat is not None or chat_type == "channel"
        user = {} if hidden else self._ensure_user(user_id, first_name, username)
        mid = self._claim_message_id(chat_id, message_id)
        message: JSONDict = {
            "message_id": mid,
            "date": date if date is not None else self._now(),
            "chat": dict(chat),
            "text": text,
        }
        if chat_type == "channel":
            message["sender_chat"] = dict(chat)
        else:
            message["from"] = dict(user)
        if sender_chat is not None:
            sc = (
                self._ensure_chat(sender_chat, "channel")
                if isinstance(sender_chat, int)
                else dict(sender_chat)
            )
            message["sender_chat"] = dict(sc)
            if chat_type != "channel":
                message["from"] = (
                    {
                        "id": GROUP_ANONYMOUS_BOT_ID,
                        "is_bot": True,
                        "first_name": "Group",
                        "username": "GroupAnonymousBot",
                    }
                    if sc.get("id") == chat_id
                    else {
                        "id": CHANNEL_BOT_ID,
                        "is_bot": True,
                        "first_name": "Channel",
                        "username": "Channel_Bot",
                    }
                )
        if message_thread_id is not None:
            message["message_thread_id"] = message_thread_id
        if is_topic_message is not None:
            message["is_topic_message"] = is_topic_message
        if reply_to_message_id is not None:
            replied = self._messages.get((chat_id, reply_to_message_id))
            message["reply_to_message"] = (
                _strip_nested_reply(replied)
                if replied is not None
                else {"message_id": reply_to_message_id, "date": message["date"], "chat": chat}
            )
        ents = detect_entities(text) if entities is None else [dict(e) for e in entities]
        if ents:
            message["entities"] = ents
        return {"channel_post" if chat_type == "channel" else "message": message}

    def edited_message_update(
        self,
        chat_id: int,
        message_id: int,
        text: str,
        *,
        user_id: int | None = None,
        edit_date: int | None = None,
        chat_type: str = "supergroup",
        first_name: str = "Alice",
        entities: Sequence[Mapping[str, Any]] | None = None,
    ) -> JSONDict:
        """Build an ``edited_message`` update for a stored message (or a new one).

        When ``(chat_id, message_id)`` is in the store its copy gets the new ``text``;
        otherwise a message from ``user_id`` (required then) is synthesised.
        """
        stored = self._messages.get((chat_id, message_id))
        if stored is not None:
            message = copy.deepcopy(stored)
        else:
            if user_id is None:
                raise ValueError("user_id is required when the message is not in the store")
            built = self.message_update(
                chat_id,
                user_id,
                text,
                chat_type=chat_type,
                message_id=message_id,
                first_name=first_name,
            )
            message = next(iter(built.values()))
        message["text"] = text
        ents = detect_entities(text) if entities is None else [dict(e) for e in entities]
        if ents:
            message["entities"] = ents
        else:
            message.pop("entities", None)
        message["edit_date"] = edit_date if edit_date is not None else self._now()
        is_channel = message.get("chat", {}).get("type") == "channel"
        return {"edited_channel_post" if is_channel else "edited_message": message}

    def message_reaction_update(
        self,
        chat_id: int,
        message_id: int,
        user_id: int,
        new_emoji_list: Iterable[str | Mapping[str, Any]],
        old_emoji_list: Iterable[str | Mapping[str, Any]] = (),
        *,
        first_name: str = "Alice",
        username: str | None = None,
    ) -> JSONDict:
        """Build a ``message_reaction`` update (user ``user_id`` changed their reaction).

        Emoji strings become ``{"type": "emoji", "emoji": ...}``; dicts pass through.
        Note Telegram only delivers these when the bot asked for them in ``allowed_updates``.
        """
        chat = self._ensure_chat(chat_id, None)
        user = self._ensure_user(user_id, first_name, username)
        return {
            "message_reaction": {
                "chat": dict(chat),
                "message_id": message_id,
                "user": dict(user),
                "date": self._now(),
                "old_reaction": _reaction_list(old_emoji_list),
                "new_reaction": _reaction_list(new_emoji_list),
            }
        }

    def chat_member_update(
        self,
        chat_id: int,
        user_id: int,
        old_status: MemberStatus | str = "left",
        new_status: MemberStatus | str = "member",
        *,
        from_user_id: int | None = None,
        first_name: str = "Alice",
        username: str | None = None,
        kind: Literal["chat_member", "my_chat_member"] | None = None,
        update_member_table: bool = True,
    ) -> JSONDict:
        """Build a ``chat_member`` update (``my_chat_member`` when ``user_id`` is the bot).

        ``from_user_id`` is who made the change (defaults to ``user_id``, i.e. a self join or
        leave).  The new status is also written to the member table used by getChatMember
        unless ``update_member_table`` is false.  Telegram delivers ``chat_member`` only when
        listed in ``allowed_updates`` (``my_chat_member`` is delivered by default).
        """
        chat = self._ensure_chat(chat_id, None)
        if user_id == self.bot_id:
            user = self.bot_user
        else:
            user = self._ensure_user(user_id, first_name, username)
        actor_id = from_user_id if from_user_id is not None else user_id
        actor = self.bot_user if actor_id == self.bot_id else self._user(actor_id)
        old = self._member_json(chat_id, user, _STATUS_ALIASES.get(old_status, old_status), {})
        new = self._member_json(chat_id, user, _STATUS_ALIASES.get(new_status, new_status), {})
        if update_member_table:
            self.set_member_status(chat_id, user_id, new_status)
        update_kind = kind or ("my_chat_member" if user_id == self.bot_id else "chat_member")
        return {
            update_kind: {
                "chat": dict(chat),
                "from": dict(actor),
                "date": self._now(),
                "old_chat_member": old,
                "new_chat_member": new,
            }
        }

    # ------------------------------------------------------------------ inspection

    def calls_to(self, method: str) -> list[Call]:
        """All recorded calls of ``method`` (case-insensitive), in arrival order."""
        wanted = method.lower()
        return [call for call in self.calls if call.method.lower() == wanted]

    def sent_messages(self, chat_id: int | None = None) -> list[JSONDict]:
        """Message dicts returned by successful ``sendMessage`` calls, in order.

        These are snapshots as sent; see :meth:`message` for the current (edited) state.
        """
        return [
            copy.deepcopy(m) for m in self._sent if chat_id is None or m["chat"]["id"] == chat_id
        ]

    def sent_texts(self, chat_id: int | None = None) -> list[str]:
        """Texts of :meth:`sent_messages`."""
        return [str(m.get("text", "")) for m in self.sent_messages(chat_id)]

    def shown_text(self, chat_id: int, message_id: int) -> str | None:
        """What members see of a message the bot sent (or last edited): its text after
        Telegram parsed the ``parse_mode`` it was sent with (tags gone, ``&lt;`` a ``<``)."""
        stored = self._messages.get((chat_id, message_id))
        if stored is None:
            return None
        mode = self._parse_modes.get((chat_id, message_id))
        return parse_html(stored["text"]).text if (mode or "").upper() == "HTML" else stored["text"]

    def shown_texts(self, chat_id: int) -> list[str]:
        """:meth:`shown_text` of every message the bot sent to ``chat_id`` and that still
        exists, in order (with later edits)."""
        shown = (
            self.shown_text(chat_id, int(m["message_id"])) for m in self.sent_messages(chat_id)
        )
        return [text for text in shown if text is not None]

    def message(self, chat_id: int, message_id: int) -> JSONDict | None:
        """Current state of a stored message, or ``None`` if unknown/deleted."""
        stored = self._messages.get((chat_id, message_id))
        return copy.deepcopy(stored) if stored is not None else None

    def commands(
        self, scope: Mapping[str, Any] | None = None, language_code: str = ""
    ) -> list[JSONDict]:
        """Commands stored by ``setMyCommands`` for ``scope``/``language_code``."""
        return copy.deepcopy(self._commands.get((self._scope_key(scope), language_code), []))

    @property
    def pending_updates(self) -> list[JSONDict]:
        """Updates not yet confirmed by a ``getUpdates`` offset."""
        return copy.deepcopy(self._pending)

    @property
    def confirmed_offset(self) -> int:
        """Highest ``offset`` the bot has passed to ``getUpdates``."""
        return self._confirmed_offset

    def delivery_count(self, update_id: int) -> int:
        """How many ``getUpdates`` responses contained ``update_id``."""
        return self._deliveries[update_id]

    @property
    def allowed_updates(self) -> list[str] | None:
        """The ``allowed_updates`` in effect (``None`` = Telegram's default set)."""
        return None if self._allowed_updates is None else list(self._allowed_updates)

    def reset_calls(self) -> None:
        """Forget recorded calls and sent-message snapshots (world state is kept)."""
        self.calls.clear()
        self._sent.clear()

    # ------------------------------------------------------------------ waiting helpers

    async def wait_for(self, predicate: Callable[[], bool], within: float = 2.0) -> None:
        """Wait until ``predicate()`` is true; re-checked after every change in the fake.

        Raises:
            TimeoutError: if it is still false after ``within`` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"condition not met within {within}s")
            await self._wait_change(remaining)

    async def wait_for_calls(self, method: str, count: int = 1, within: float = 2.0) -> list[Call]:
        """Wait until at least ``count`` calls of ``method`` have been answered."""

        def done() -> bool:
            return sum(1 for c in self.calls_to(method) if c.status is not None) >= count

        try:
            await self.wait_for(done, within)
        except TimeoutError:
            got = len(self.calls_to(method))
            raise TimeoutError(f"expected {count} {method} call(s), got {got}") from None
        return self.calls_to(method)

    async def wait_for_sent_messages(
        self, count: int = 1, chat_id: int | None = None, within: float = 2.0
    ) -> list[JSONDict]:
        """Wait until the bot has sent at least ``count`` messages (to ``chat_id``)."""
        try:
            await self.wait_for(lambda: len(self.sent_messages(chat_id)) >= count, within)
        except TimeoutError:
            got = self.sent_texts(chat_id)
            raise TimeoutError(f"expected {count} sent message(s), got {got!r}") from None
        return self.sent_messages(chat_id)

    async def wait_until_confirmed(self, update_id: int, within: float = 2.0) -> None:
        """Wait until the bot confirmed ``update_id`` via a later ``getUpdates`` offset."""
        await self.wait_for(lambda: self._confirmed_offset > update_id, within)

    # ------------------------------------------------------------------ internals: state

    def _now(self) -> int:
        return int(self._clock())

    def _notify(self) -> None:
        """Wake everything waiting for a change."""
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def _wait_change(self, seconds: float) -> None:
        event = self._changed
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    def _claim_message_id(self, chat_id: int, wanted: int | None = None) -> int:
        """Allocate a message id in ``chat_id`` (or reserve ``wanted``)."""
        nxt = self._next_message_id.get(chat_id, 1)
        mid = wanted if wanted is not None else nxt
        self._next_message_id[chat_id] = max(nxt, mid + 1)
        return mid

    def _ensure_chat(
        self,
        chat_id: int,
        chat_type: str | None,
        *,
        title: str | None = None,
        first_name: str | None = None,
    ) -> JSONDict:
        existing = self._chats.get(chat_id)
        if existing is not None and (chat_type is None or existing["type"] == chat_type):
            if title and existing.get("title") != title:
                return self.add_chat(chat_id, str(existing["type"]), title=title)
            return existing
        if chat_type is None:
            if chat_id > 0:
                chat_type = "private"
            elif str(chat_id).startswith("-100"):
                chat_type = "supergroup"
            else:
                chat_type = "group"
        return self.add_chat(chat_id, chat_type, title=title, first_name=first_name)

    def _ensure_user(self, user_id: int, first_name: str, username: str | None) -> JSONDict:
        existing = self._users.get(user_id)
        if (
            existing is not None
            and existing.get("first_name") == first_name
            and (username is None or existing.get("username") == username)
        ):
            return existing
        keep = existing or {}
        return self.add_user(
            user_id,
            first_name,
            username=username if username is not None else keep.get("username"),
            last_name=keep.get("last_name"),
            is_bot=bool(keep.get("is_bot", False)),
            language_code=keep.get("language_code"),
        )

    def _user(self, user_id: int) -> JSONDict:
        if user_id == self.bot_id:
            return self.bot_user
        return self._users.get(
            user_id, {"id": user_id, "is_bot": False, "first_name": f"User {user_id}"}
        )

    def _store_incoming_message(self, message: Mapping[str, Any]) -> None:
        chat = message.get("chat") or {}
        chat_id = chat.get("id")
        mid = message.get("message_id")
        if not isinstance(chat_id, int) or not isinstance(mid, int):
            return
        if chat_id not in self._chats:
            self._chats[chat_id] = dict(chat)
        sender = message.get("from")
        if isinstance(sender, Mapping) and isinstance(sender.get("id"), int):
            self._users.setdefault(int(sender["id"]), dict(sender))
            if chat.get("type") in ("group", "supergroup") and "sender_chat" not in message:
                # Only a member can post in a group (a message sent as a chat has a stand-in
                # bot in ``from``, which is no member).
                self._members.setdefault((chat_id, int(sender["id"])), {"status": "member"})
        self._claim_message_id(chat_id, mid)
        self._messages[(chat_id, mid)] = copy.deepcopy(dict(message))

    def _resolve_chat_id(self, value: Any) -> int:
        if isinstance(value, bool):
            raise TelegramAPIError(400, "Bad Request: chat not found")
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            if value.startswith("@"):
                for chat in self._chats.values():
                    if str(chat.get("username", "")).lower() == value[1:].lower():
                        return int(chat["id"])
                raise TelegramAPIError(400, "Bad Request: chat not found")
            try:
                return int(value)
            except ValueError:
                pass
        raise TelegramAPIError(400, "Bad Request: chat not found")

    def _member_json(
        self, chat_id: int, user: JSONDict, status: str, extra: Mapping[str, Any]
    ) -> JSONDict:
        """Build a ChatMember object with every field PTB requires for ``status``."""
        base: JSONDict = {"status": status, "user": dict(user)}
        if status == "creator":
            base["is_anonymous"] = False
        elif status == "administrator":
            base.update(
                can_be_edited=False,
                is_anonymous=False,
                can_manage_chat=True,
                can_delete_messages=True,
                can_manage_video_chats=True,
                can_restrict_members=True,
                can_promote_members=False,
                can_change_info=True,
                can_invite_users=True,
                can_post_stories=True,
                can_edit_stories=True,
                can_delete_stories=True,
                can_pin_messages=True,
            )
            if self._chats.get(chat_id, {}).get("type") == "supergroup":
                base["can_manage_topics"] = True
        elif status == "restricted":
            base.update(
                is_member=True,
                can_send_messages=False,
                can_send_audios=False,
                can_send_documents=False,
                can_send_photos=False,
                can_send_videos=False,
                can_send_video_notes=False,
                can_send_voice_notes=False,
                can_send_polls=False,
                can_send_other_messages=False,
                can_add_web_page_previews=False,
                can_change_info=False,
                can_invite_users=False,
                can_pin_messages=False,
                can_manage_topics=False,
                can_react_to_messages=False,
                can_edit_tag=False,
                until_date=0,
            )
        elif status == "kicked":
            base["until_date"] = 0
        elif status not in ("member", "left"):
            raise ValueError(f"unknown chat member status {status!r}")
        base.update(extra)
        return base

    def _bot_can_send(self, chat_id: int) -> None:
        status = self.member_status(chat_id, self.bot_id)
        chat_type = self._chats.get(chat_id, {}).get("type")
        if status == "kicked":
            if chat_type == "private":
                raise TelegramAPIError(403, "Forbidden: bot was blocked by the user")
            raise TelegramAPIError(403, f"Forbidden: bot was kicked from the {chat_type} chat")
        if status == "left" and chat_type != "private":
            raise TelegramAPIError(403, f"Forbidden: bot is not a member of the {chat_type} chat")

    @staticmethod
    def _scope_key(scope: Any) -> str:
        if not scope:
            scope = {"type": "default"}
        return json.dumps(scope, sort_keys=True)

    # ------------------------------------------------------------------ internals: HTTP

    async def _read_params(
        self, request: web.Request
    ) -> tuple[JSONDict, dict[str, Any], dict[str, bytes]]:
        """Return (decoded params, raw params, uploaded files) of a request."""
        raw: dict[str, Any] = dict(request.query)
        files: dict[str, bytes] = {}
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                body = await request.json()
                if not isinstance(body, dict):
                    raise TelegramAPIError(400, "Bad Request: invalid JSON body")
                params: JSONDict = {k: _decode_value(k, v) for k, v in raw.items()}
                params.update(body)
                raw.update(body)
                return params, raw, files
            form = await request.post()
            for key, value in form.items():
                if isinstance(value, web.FileField):
                    files[key] = value.file.read()
                else:
                    raw[key] = value
        decoded = {
            key: _decode_value(key, value) if isinstance(value, str) else value
            for key, value in raw.items()
        }
        return decoded, raw, files

    def _next_fault(self, method_key: str) -> Fault | None:
        for key in (method_key, "*"):
            queue = self._faults.get(key)
            if queue:
                return queue.popleft()
        return None

    @staticmethod
    def _json(call: Call, status: int, body: JSONDict) -> web.Response:
        call.status = status
        call.response = body
        return web.json_response(body, status=status)

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        sent_method = request.match_info["method"]
        entry = self._methods.get(sent_method.lower())
        call = Call(
            method=entry[0] if entry else sent_method,
            params={},
            at=time.monotonic(),
            http_method=request.method,
            content_type=request.content_type if request.can_read_body else "",
            peer=request.transport.get_extra_info("peername") if request.transport else None,
        )
        try:
            call.params, call.raw, call.files = await self._read_params(request)
        except TelegramAPIError as exc:
            self.calls.append(call)
            return self._json(call, exc.status, exc.payload())
        except ValueError:
            self.calls.append(call)
            return self._json(
                call, 400, TelegramAPIError(400, "Bad Request: malformed request").payload()
            )
        self.calls.append(call)
        self._notify()
        try:
            return await self._process(request, call, entry)
        finally:
            self._notify()

    async def _process(
        self, request: web.Request, call: Call, entry: tuple[str, MethodHandler] | None
    ) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return self._json(
                call, 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
            )

        fault = self._next_fault(call.method.lower())
        if fault is not None:
            call.fault = repr(fault)
            if isinstance(fault, Slow):
                await asyncio.sleep(fault.seconds)
            elif isinstance(fault, Drop):
                if request.transport is not None:
                    request.transport.close()
                # Writing this response fails on the closed transport; aiohttp treats that
                # as a premature client disconnect and stays quiet.
                return web.Response(status=200)
            elif isinstance(fault, RetryAfter):
                return self._json(call, 429, self._retry_after_body(fault.seconds))
            elif isinstance(fault, ServerError):
                description = fault.description or {
                    500: "Internal Server Error",
                    502: "Bad Gateway",
                    503: "Service Unavailable",
                    504: "Gateway Timeout",
                }.get(fault.status, "Server Error")
                return self._json(
                    call,
                    fault.status,
                    {"ok": False, "error_code": fault.status, "description": description},
                )
            else:
                error = TelegramAPIError(fault.status, fault.description, fault.parameters)
                return self._json(call, fault.status, error.payload())

        if entry is None:
            return self._json(
                call,
                400,
                {"ok": False, "error_code": 400, "description": "Bad Request: method not found"},
            )

        try:
            self._check_migration(call.params)
            self._check_rate_limits(call)
            result = await entry[1](call.params)
        except TelegramAPIError as exc:
            if exc.status == 429 and call.fault is None:
                call.fault = "rate_limit"
            return self._json(call, exc.status, exc.payload())
        return self._json(call, 200, {"ok": True, "result": result})

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        wanted = request.match_info["file_path"]
        for info, content in self._files.values():
            if info["file_path"] == wanted:
                return web.Response(body=content, content_type="application/octet-stream")
        return web.json_response(
            {"ok": False, "error_code": 404, "description": "Not Found"}, status=404
        )

    @staticmethod
    def _retry_after_body(seconds: int) -> JSONDict:
        return {
            "ok": False,
            "error_code": 429,
            "description": f"Too Many Requests: retry after {seconds}",
            "parameters": {"retry_after": seconds},
        }

    def _check_migration(self, params: Mapping[str, Any]) -> None:
        if "chat_id" not in params:
            return
        try:
            chat_id = self._resolve_chat_id(params["chat_id"])
        except TelegramAPIError:
            return
        new_id = self._migrated.get(chat_id)
        if new_id is not None:
            raise TelegramAPIError(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": new_id},
            )

    def _check_rate_limits(self, call: Call) -> None:
        limits = self._rate_limits
        if limits is None or call.method not in limits.methods:
            return
        try:
            chat_id = self._resolve_chat_id(call.params.get("chat_id"))
        except TelegramAPIError:
            return
        now = time.monotonic()
        tol = limits.tolerance
        scale = limits.time_scale
        rate = limits.per_chat_per_sec * scale
        minute, second = 60.0 / scale, 1.0 / scale
        violation: tuple[Literal["per_chat", "per_group", "global"], float] | None = None
        during_wait = False
        if limits.escalation is not None:
            # A chat (or the whole bot) still in a flood wait is refused whatever its quota.
            waits: list[tuple[int | str, Literal["per_chat", "global"]]] = [
                (chat_id, "per_chat"),
                ("global", "global"),
            ]
            for key, kind in waits:
                wait = self._flood_waits.get(key)
                if wait is not None and now < wait.until:
                    violation, during_wait = (kind, wait.until - now), True
                    break

        tokens, last = self._chat_buckets.get(chat_id, (limits.per_chat_burst, now))
        tokens = min(limits.per_chat_burst, tokens + (now - last) * rate)
        if violation is None and tokens < 1.0 - tol * rate:
            violation = ("per_chat", (1.0 - tokens) / rate)

        is_group = chat_id < 0 and self._chats.get(chat_id, {}).get("type") != "channel"
        group_window = self._group_sends.setdefault(chat_id, deque()) if is_group else None
        if violation is None and group_window is not None:
            while group_window and group_window[0] <= now - (minute - tol):
                group_window.popleft()
            if len(group_window) >= limits.per_group_per_min:
                violation = ("per_group", group_window[0] + minute - now)

        if violation is None:
            while self._global_sends and self._global_sends[0] <= now - (second - tol):
                self._global_sends.popleft()
            if len(self._global_sends) >= limits.global_per_sec:
                violation = ("global", self._global_sends[0] + second - now)

        if violation is not None:
            retry_after = max(1, math.ceil(violation[1]))
            strikes = 0
            if limits.escalation is not None:
                retry_after, strikes = self._escalate(
                    "global" if violation[0] == "global" else chat_id, retry_after, now
                )
            self.rate_limit_violations += 1
            self.rate_limit_log.append(
                RateLimitViolation(
                    kind=violation[0],
                    method=call.method,
                    chat_id=chat_id,
                    at=now,
                    retry_after=retry_after,
                    during_wait=during_wait,
                    strikes=strikes,
                )
            )
            raise TelegramAPIError(
                429,
                f"Too Many Requests: retry after {retry_after}",
                {"retry_after": retry_after},
            )

        self._chat_buckets[chat_id] = (tokens - 1.0, now)
        if group_window is not None:
            group_window.append(now)
        self._global_sends.append(now)

    def _escalate(self, key: int | str, retry_after: int, now: float) -> tuple[int, int]:
        """The escalated ``retry_after`` of an offence by ``key`` (a chat id or "global") and
        its strikes; starts the flood wait it announces."""
        limits = self._rate_limits
        assert limits is not None and limits.escalation is not None
        wait = self._flood_waits.setdefault(key, _FloodWait())
        recent = now < wait.until or now - wait.last <= limits.cooldown / limits.time_scale
        if recent:
            wait.strikes += 1
        else:
            wait.strikes, wait.base = 0, retry_after
        wait.last = now
        grown = math.ceil(wait.base * limits.escalation**wait.strikes)
        retry_after = max(1, min(limits.max_retry_after, grown))
        wait.until = now + retry_after / limits.time_scale
        return retry_after, wait.strikes

    def flood_wait(self, key: int | str) -> float:
        """Seconds (scaled, monotonic) left of the flood wait of a chat id or "global"."""
        wait = self._flood_waits.get(key)
        return max(0.0, wait.until - time.monotonic()) if wait is not None else 0.0

    # ------------------------------------------------------------------ parameter helpers

    @staticmethod
    def _int(params: Mapping[str, Any], key: str, default: int | None = None) -> int | None:
        value = params.get(key)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            raise TelegramAPIError(400, f"Bad Request: invalid {key} specified")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise TelegramAPIError(400, f"Bad Request: invalid {key} specified") from None

    def _req_int(self, params: Mapping[str, Any], key: str) -> int:
        value = self._int(params, key)
        if value is None:
            raise TelegramAPIError(400, f"Bad Request: {key} is empty")
        return value

    def _req_chat(self, params: Mapping[str, Any]) -> int:
        if params.get("chat_id") in (None, ""):
            raise TelegramAPIError(400, "Bad Request: chat_id is empty")
        return self._resolve_chat_id(params["chat_id"])

    @staticmethod
    def _text(params: Mapping[str, Any], key: str = "text") -> str:
        text = params.get(key)
        text = "" if text is None else str(text)
        if not text.strip():
            raise TelegramAPIError(400, "Bad Request: message text is empty")
        # Telegram counts UTF-16 code units of the text it keeps after parsing entities.
        kept = entity_text(text, params.get("parse_mode"))
        if not kept.strip():
            raise TelegramAPIError(400, "Bad Request: message text is empty")
        if _utf16_len(kept) > MAX_MESSAGE_LENGTH:
            raise TelegramAPIError(400, "Bad Request: message is too long")
        return text

    # ------------------------------------------------------------------ method handlers

    async def _m_true(self, params: JSONDict) -> bool:
        return True

    async def _m_get_me(self, params: JSONDict) -> JSONDict:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _m_set_webhook(self, params: JSONDict) -> bool:
        url = str(params.get("url") or "")
        if url:
            self._check_webhook_url(url)
        secret = params.get("secret_token")
        secret = None if secret in (None, "") else str(secret)
        if secret is not None:
            if len(secret) > 256:
                raise TelegramAPIError(400, "Bad Request: secret token is too long")
            if not _SECRET_TOKEN_CHARS_RE.fullmatch(secret):
                raise TelegramAPIError(
                    400, "Bad Request: secret token contains unallowed characters"
                )
        self._webhook_url = url
        self._webhook_secret = secret if url else None
        if params.get("drop_pending_updates"):
            self._pending.clear()
        return True

    @staticmethod
    def _check_webhook_url(url: str) -> None:
        """Telegram only calls public https addresses on a few ports."""
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise TelegramAPIError(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        try:
            port = parts.port or 443
        except ValueError:
            raise TelegramAPIError(400, "Bad Request: bad webhook: Invalid port") from None
        if port not in WEBHOOK_PORTS:
            raise TelegramAPIError(
                400,
                "Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443",
            )
        try:
            address = ipaddress.ip_address(parts.hostname)
        except ValueError:
            return  # a host name: the fake resolves nothing
        if not address.is_global:
            raise TelegramAPIError(
                400, f"Bad Request: bad webhook: IP address {address} is reserved"
            )

    async def _m_delete_webhook(self, params: JSONDict) -> bool:
        self._webhook_url = ""
        self._webhook_secret = None
        if params.get("drop_pending_updates"):
            self._pending.clear()
        return True

    async def _m_get_webhook_info(self, params: JSONDict) -> JSONDict:
        return {
            "url": self._webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            self._confirmed_offset = max(self._confirmed_offset, offset)
            self._pending = [u for u in self._pending if u["update_id"] >= offset]
        elif offset < 0:
            self._pending = self._pending[offset:]

    def _deliverable(self, limit: int) -> list[JSONDict]:
        if self.strict_allowed_updates:
            allowed = self._allowed_updates
            kept: list[JSONDict] = []
            for update in self._pending:
                kind = _update_kind(update)
                if (allowed is None and kind in UPDATES_NOT_DELIVERED_BY_DEFAULT) or (
                    allowed is not None and kind not in allowed
                ):
                    self.filtered_updates.append(update)
                else:
                    kept.append(update)
            self._pending = kept
        return self._pending[:limit]

    async def _m_get_updates(self, params: JSONDict) -> list[JSONDict]:
        if self._webhook_url:
            raise TelegramAPIError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = self._int(params, "offset")
        limit = min(100, max(1, self._int(params, "limit", 100) or 100))
        try:
            timeout = max(0.0, float(params.get("timeout") or 0))
        except (TypeError, ValueError):
            raise TelegramAPIError(400, "Bad Request: invalid timeout specified") from None
        if "allowed_updates" in params:
            allowed = params["allowed_updates"]
            if isinstance(allowed, str):
                allowed = [allowed]
            self._allowed_updates = list(allowed) if allowed else None
        if offset is not None:
            self._confirm(offset)

        self._poll_generation += 1
        generation = self._poll_generation
        self._notify()  # terminates an older concurrent long poll (409 below)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if generation != self._poll_generation:
                raise TelegramAPIError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only "
                    "one bot instance is running",
                )
            batch = self._deliverable(limit)
            remaining = deadline - loop.time()
            if batch or self._closing or remaining <= 0:
                break
            await self._wait_change(remaining)
        for update in batch:
            self._deliveries[int(update["update_id"])] += 1
        return copy.deepcopy(batch)

    async def _m_send_message(self, params: JSONDict) -> JSONDict:
        chat_id = self._req_chat(params)
        text = self._text(params)
        chat = self._ensure_chat(chat_id, None)
        self._bot_can_send(chat_id)

        reply_params = params.get("reply_parameters")
        if isinstance(reply_params, str):
            try:
                reply_params = json.loads(reply_params)
            except ValueError:
                raise TelegramAPIError(400, "Bad Request: can't parse reply parameters") from None
        if not isinstance(reply_params, dict):
            reply_params = None
        if reply_params is None and params.get("reply_to_message_id") is not None:
            reply_params = {
                "message_id": params["reply_to_message_id"],
                "allow_sending_without_reply": params.get("allow_sending_without_reply"),
            }

        thread_id = self._int(params, "message_thread_id")
        replied: JSONDict | None = None
        if reply_params is not None:
            reply_chat = (
                self._resolve_chat_id(reply_params["chat_id"])
                if reply_params.get("chat_id") is not None
                else chat_id
            )
            reply_mid = self._int(reply_params, "message_id")
            replied = self._messages.get((reply_chat, reply_mid)) if reply_mid is not None else None
            if replied is None and not reply_params.get("allow_sending_without_reply"):
                raise TelegramAPIError(400, "Bad Request: message to be replied not found")
            if replied is not None and reply_chat != chat_id:
                replied = None  # cross-chat replies (external_reply) are not modelled
            if (
                replied is not None
                and thread_id is None
                and replied.get("is_topic_message")
                and replied.get("message_thread_id") is not None
            ):
                thread_id = int(replied["message_thread_id"])

        message: JSONDict = {
            "message_id": self._claim_message_id(chat_id),
            "from": self.bot_user,
            "chat": dict(chat),
            "date": self._now(),
            "text": text,
        }
        if thread_id is not None:
            message["message_thread_id"] = thread_id
            if chat.get("is_forum"):
                message["is_topic_message"] = True
        if replied is not None:
            message["reply_to_message"] = _strip_nested_reply(replied)
        entities = params.get("entities")
        if isinstance(entities, list) and entities and not params.get("parse_mode"):
            message["entities"] = entities
        markup = params.get("reply_markup")
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = markup

        self._messages[(chat_id, message["message_id"])] = copy.deepcopy(message)
        self._parse_modes[(chat_id, message["message_id"])] = params.get("parse_mode")
        self._sent.append(copy.deepcopy(message))
        return message

    async def _m_edit_message_text(self, params: JSONDict) -> JSONDict | bool:
        text = self._text(params)
        if params.get("inline_message_id"):
            return True
        chat_id = self._req_chat(params)
        message_id = self._req_int(params, "message_id")
        stored = self._messages.get((chat_id, message_id))
        if stored is None:
            raise TelegramAPIError(400, "Bad Request: message to edit not found")
        if stored.get("from", {}).get("id") != self.bot_id:
            raise TelegramAPIError(400, "Bad Request: message can't be edited")
        markup = params.get("reply_markup")
        new_markup = markup if isinstance(markup, dict) and "inline_keyboard" in markup else None
        if stored.get("text") == text and stored.get("reply_markup") == new_markup:
            raise TelegramAPIError(
                400,
                "Bad Request: message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup of the "
                "message",
            )
        stored["text"] = text
        stored["edit_date"] = self._now()
        self._parse_modes[(chat_id, message_id)] = params.get("parse_mode")
        entities = params.get("entities")
        if isinstance(entities, list) and entities and not params.get("parse_mode"):
            stored["entities"] = entities
        else:
            stored.pop("entities", None)
        if new_markup is not None:
            stored["reply_markup"] = new_markup
        else:
            stored.pop("reply_markup", None)
        return copy.deepcopy(stored)

    def _delete_one(self, chat_id: int, message_id: int) -> bool:
        stored = self._messages.get((chat_id, message_id))
        if stored is None:
            return False
        chat_type = self._chats.get(chat_id, {}).get("type")
        own = stored.get("from", {}).get("id") == self.bot_id
        if (
            not own
            and chat_type != "private"
            and self.member_status(chat_id, self.bot_id) not in ("administrator", "creator")
        ):
            raise TelegramAPIError(400, "Bad Request: message can't be deleted")
        del self._messages[(chat_id, message_id)]
        self.deleted_messages.append((chat_id, message_id))
        return True

    async def _m_delete_message(self, params: JSONDict) -> bool:
        chat_id = self._req_chat(params)
        message_id = self._req_int(params, "message_id")
        if not self._delete_one(chat_id, message_id):
            raise TelegramAPIError(400, "Bad Request: message to delete not found")
        return True

    async def _m_delete_messages(self, params: JSONDict) -> bool:
        chat_id = self._req_chat(params)
        ids = params.get("message_ids")
        if not isinstance(ids, list) or not ids:
            raise TelegramAPIError(400, "Bad Request: message_ids is empty")
        for message_id in ids:
            self._delete_one(chat_id, int(message_id))
        return True

    async def _m_set_message_reaction(self, params: JSONDict) -> bool:
        chat_id = self._req_chat(params)
        message_id = self._req_int(params, "message_id")
        reaction = params.get("reaction") or []
        self.reactions.append(
            {
                "chat_id": chat_id,
                "message_id": message_id,
                "reaction": reaction if isinstance(reaction, list) else [reaction],
                "is_big": bool(params.get("is_big", False)),
            }
        )
        return True

    async def _m_get_chat(self, params: JSONDict) -> JSONDict:
        chat_id = self._req_chat(params)
        chat = self._ensure_chat(chat_id, None)
        return {
            **chat,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": True,
                "limited_gifts": True,
                "unique_gifts": True,
                "premium_subscription": True,
                "gifts_from_channels": True,
            },
        }

    async def _m_get_chat_member(self, params: JSONDict) -> JSONDict:
        chat_id = self._req_chat(params)
        user_id = self._req_int(params, "user_id")
        # Telegram answers only about chats the bot is in and users it has come across; a
        # known user who is not in the chat is "left".
        if chat_id not in self._chats:
            raise TelegramAPIError(400, "Bad Request: chat not found")
        if not self._knows_user(user_id):
            raise TelegramAPIError(400, "Bad Request: user not found")
        entry = dict(self._members.get((chat_id, user_id), {}))
        entry.pop("status", None)
        status = self.member_status(chat_id, user_id)
        return self._member_json(chat_id, self._user(user_id), status, entry)

    def _knows_user(self, user_id: int) -> bool:
        return (
            user_id == self.bot_id
            or user_id in self._users
            or any(uid == user_id for _, uid in self._members)
        )

    async def _m_get_chat_administrators(self, params: JSONDict) -> list[JSONDict]:
        chat_id = self._req_chat(params)
        admins: list[JSONDict] = []
        for (cid, user_id), entry in self._members.items():
            if cid == chat_id and entry.get("status") in ("creator", "administrator"):
                extra = dict(entry)
                status = str(extra.pop("status"))
                admins.append(self._member_json(chat_id, self._user(user_id), status, extra))
        return admins

    async def _m_leave_chat(self, params: JSONDict) -> bool:
        chat_id = self._req_chat(params)
        self.set_member_status(chat_id, self.bot_id, "left")
        return True

    async def _m_set_my_commands(self, params: JSONDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise TelegramAPIError(400, "Bad Request: can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not _BOT_COMMAND_NAME_RE.match(
                str(command.get("command", ""))
            ):
                raise TelegramAPIError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise TelegramAPIError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        key = (self._scope_key(params.get("scope")), str(params.get("language_code") or ""))
        self._commands[key] = [
            {"command": str(c["command"]), "description": str(c["description"])} for c in commands
        ]
        return True

    async def _m_get_my_commands(self, params: JSONDict) -> list[JSONDict]:
        key = (self._scope_key(params.get("scope")), str(params.get("language_code") or ""))
        return copy.deepcopy(self._commands.get(key, []))

    async def _m_delete_my_commands(self, params: JSONDict) -> bool:
        key = (self._scope_key(params.get("scope")), str(params.get("language_code") or ""))
        self._commands.pop(key, None)
        return True

    async def _m_get_file(self, params: JSONDict) -> JSONDict:
        file_id = str(params.get("file_id") or "")
        if file_id not in self._files:
            raise TelegramAPIError(400, "Bad Request: invalid file_id")
        return dict(self._files[file_id][0])
