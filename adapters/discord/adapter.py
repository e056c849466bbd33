"""The Discord adapter on discord.py.

discord.py keeps the gateway alive (heartbeats, RESUME after a drop, rate-limit buckets). This
module hands its events to the hub in the order Discord sent them, answers slash commands
through their interactions, reads what was said while copss was away, and posts so that
nothing ever pings anyone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import discord
from discord import app_commands

from adapters.base import Adapter, AdapterError, EventSink, TransientAdapterError
from adapters.discord.translate import (
    MESSAGE_LIMIT,
    PLATFORM,
    WEBHOOK_NAME,
    BotView,
    adapter_error,
    catch_up_plan,
    channel_of,
    command_event,
    content_intent_granted,
    content_withheld,
    copy_head,
    delete_events,
    edit_event,
    interaction_id,
    is_copss_webhook,
    is_own,
    message_event,
    message_nonce,
    name_prefix,
    reaction_event,
    reply_line,
    webhook_username,
)
from adapters.text import split_text
from bot.events import ChannelRef, Event, Outgoing

log = logging.getLogger(__name__)

#: Whatever the text says (@everyone, <@&role>, <@id>), nobody and no role is pinged.
NO_MENTIONS = discord.AllowedMentions.none()
#: How long Discord accepts answers through an interaction's webhook.
INTERACTION_TTL = 15 * 60.0

ENABLE_MESSAGE_CONTENT = (
    "Switch it on: https://discord.com/developers/applications -> your application -> Bot -> "
    "Privileged Gateway Intents -> 'Message Content Intent' -> Save Changes, then start copss "
    "again. (A bot in 100 or more servers also needs Discord to approve the intent for it.)"
)
MESSAGE_CONTENT_HELP = (
    "Discord refused the Message Content intent (gateway close code 4014), so copss cannot "
    "read what members write. " + ENABLE_MESSAGE_CONTENT
)

#: A unit of intake work, run in order by one task: translate something and feed the sink.
Job = Callable[[EventSink], Awaitable[None]]
#: How long copss posts copies as the bot in a channel where Discord refused it a webhook
#: before asking again (an admin may grant Manage Webhooks meanwhile).
WEBHOOK_RETRY_AFTER = 600.0
#: How many posted messages copss remembers (webhook, head, chunks) without asking Discord.
REMEMBERED_MESSAGES = 10_000


@dataclass(frozen=True)
class _Copy:
    """A message copss posted: through which of its webhooks (None: as the bot), what it put
    before the text, and the ids of every chunk the text was split into (first first)."""

    webhook_id: int | None
    head: str
    chunk_ids: tuple[int, ...]


@dataclass
class _Partial:
    """A split message part-way posted: its head, all its chunks, the ids posted so far, and
    the webhook its first chunk went through (None: as the bot)."""

    head: str
    chunks: list[str]
    posted: list[str]
    webhook_id: int | None = None


class _WebhookRefused(Exception):
    """Posting through the webhook failed before anything was posted; ``gone``: the webhook
    no longer exists (else Discord refused it, e.g. missing permission or the username)."""

    def __init__(self, gone: bool) -> None:
        super().__init__("webhook gone" if gone else "webhook refused")
        self.gone = gone


def _thread(channel: ChannelRef) -> Any:
    """The ``thread`` argument of a webhook call: the thread, or discord.py's "none"."""
    return discord.Object(int(channel.thread_id)) if channel.thread_id else discord.utils.MISSING


def _webhook_gone(exc: BaseException) -> bool:
    return isinstance(exc, discord.NotFound) and exc.code == 10015  # Unknown Webhook


def _webhook_trouble(exc: BaseException) -> bool:
    """A webhook failure that posting as the bot can avoid: the webhook deleted, webhooks
    forbidden, or a request Discord refuses from webhooks only (e.g. a username)."""
    if _webhook_gone(exc):
        return True
    return isinstance(exc, discord.HTTPException) and exc.status in (400, 403)


def copss_intents() -> discord.Intents:
    """Servers and their channels, messages with their text, reactions, direct messages."""
    intents = discord.Intents.none()
    intents.guilds = True
    intents.guild_messages = True
    intents.message_content = True
    intents.guild_reactions = True
    intents.dm_messages = True
    intents.dm_reactions = True
    return intents


class _Client(discord.Client):
    """discord.py's client, handing every event to its adapter.

    discord.py runs each event handler in a task of its own, so a handler that awaited
    anything could overtake the one before it (an answer stored before its question). The
    handlers therefore only queue, synchronously; one task takes the queue in order.
    """

    def __init__(self, adapter: DiscordAdapter, **options: Any) -> None:
        options.setdefault("intents", copss_intents())
        options.setdefault("allowed_mentions", NO_MENTIONS)
        # Without the members intent there is nothing to chunk; skip the wait for it.
        options.setdefault("chunk_guilds_at_startup", False)
        super().__init__(**options)
        self.adapter = adapter
        self.tree: app_commands.CommandTree[_Client] = app_commands.CommandTree(self)

    async def setup_hook(self) -> None:
        await self.adapter._after_login()

    async def on_ready(self) -> None:
        # READY comes with every new gateway session (not after a RESUME, which replays the
        # missed events itself): read what was said while no session was listening.
        self.adapter._enqueue(self.adapter._catch_up)

    async def on_message(self, message: discord.Message) -> None:
        self.adapter._enqueue(lambda sink: self.adapter._take_message(message, sink))

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        self.adapter._enqueue(lambda sink: self.adapter._take_edit(payload, sink))

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        self.adapter._enqueue(
            lambda sink: self.adapter._take_delete(payload.channel_id, {payload.message_id}, sink)
        )

    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        self.adapter._enqueue(
            lambda sink: self.adapter._take_delete(payload.channel_id, payload.message_ids, sink)
        )

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        self.adapter._enqueue(lambda sink: self.adapter._take_reaction(payload, sink))

    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        self.adapter._enqueue(lambda sink: self.adapter._take_reaction(payload, sink))


class DiscordAdapter(Adapter):
    """A Discord bot: text channels, threads, forum posts and DMs; slash and text commands.

    ``client_kwargs`` go to :class:`discord.Client` (e.g. ``max_ratelimit_timeout``).
    """

    platform = PLATFORM

    def __init__(
        self,
        token: str,
        *,
        commands: Sequence[tuple[str, str]] = (),
        command_prefix: str = "!",
        guild_ready_timeout: float = 2.0,
        **client_kwargs: Any,
    ) -> None:
        self.commands = list(commands)
        self.command_prefix = command_prefix
        self.client = _Client(self, guild_ready_timeout=guild_ready_timeout, **client_kwargs)
        #: Set once the newest gateway session has read what was said while none listened.
        self.caught_up = asyncio.Event()
        self._token = token
        self._view = BotView(0)
        self._jobs: asyncio.Queue[Job] = asyncio.Queue()
        self._interactions: dict[int, tuple[discord.Interaction, float]] = {}
        # Chunks of a split message already posted, by outbox key, so a retry goes on from
        # where it failed (interaction follow-ups and webhooks take no nonce to make a repeat
        # harmless).
        self._posted: dict[str, _Partial] = {}
        # copss's webhook per channel id, channels where Discord refused one (and when), and
        # the ids of every webhook copss posted through (their messages are never read in).
        self._hooks: dict[int, discord.Webhook] = {}
        self._no_hooks: dict[int, float] = {}
        self._hook_locks: dict[int, asyncio.Lock] = {}
        self._hook_ids: set[int] = set()
        # Recently posted messages: through which webhook, with which head, in which chunks.
        self._copies: OrderedDict[int, _Copy] = OrderedDict()
        # Parents of threads seen only by id; a thread never moves to another channel.
        self._places: dict[int, ChannelRef] = {}
        self._warned_withheld = False
        self._closing = False

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, sink: EventSink) -> None:
        """Log in, register the slash commands, catch up, then relay events until closed."""
        if self._closing:
            return
        intake = asyncio.create_task(self._take_in(sink), name="discord:intake")
        try:
            await self.client.start(self._token)
        except discord.LoginFailure as exc:
            raise AdapterError("Discord refused the bot token (check COPSS_DISCORD_TOKEN)") from exc
        except discord.PrivilegedIntentsRequired as exc:
            raise AdapterError(MESSAGE_CONTENT_HELP) from exc
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

    async def _after_login(self) -> None:
        user = self.client.user
        assert user is not None  # setup_hook runs after login
        self._view = BotView(
            user.id,
            self.client.application_id,
            self.command_prefix,
            frozenset(name.casefold() for name, _ in self.commands),
        )
        log.info("discord: logged in as %s (id %s)", user.name, user.id)
        if not content_intent_granted(self.client.application_flags):
            # The gateway has the last word (close code 4014); this only says why early.
            log.warning(
                "discord: the application's settings do not show the Message Content intent; "
                "if Discord refuses it, copss stops with instructions"
            )
        await self._register_commands()

    async def _register_commands(self) -> None:
        tree = self.client.tree
        for name, summary in self.commands:
            try:
                tree.add_command(self._slash_command(name, summary))
            except (ValueError, TypeError, app_commands.AppCommandError) as exc:
                log.warning("discord: cannot offer /%s as a slash command: %s", name, exc)
        try:
            await tree.sync()  # global commands, as Discord shows them in every server and DM
        except discord.HTTPException as exc:
            log.warning("discord: could not register the slash commands: %s", exc)

    def _slash_command(self, name: str, summary: str) -> app_commands.Command[Any, Any, None]:
        adapter = self

        @app_commands.describe(text="what to ask, or the command's arguments")
        async def invoke(interaction: discord.Interaction, text: str | None = None) -> None:
            await adapter._on_slash(interaction, name, text)

        description = (summary or name)[:100]  # Discord's limit
        return app_commands.Command(name=name, description=description, callback=invoke)

    # -- receiving ------------------------------------------------------------------------------

    def _enqueue(self, job: Job) -> None:
        self._jobs.put_nowait(job)

    async def _take_in(self, sink: EventSink) -> None:
        while True:
            job = await self._jobs.get()
            try:
                await job(sink)
            except Exception:
                # One bad event must not stop the ones behind it.
                log.exception("discord: could not take in an event")
            finally:
                self._jobs.task_done()

    async def _read(
        self, message: discord.Message, channel: ChannelRef | None = None
    ) -> Event | None:
        if self._mine(message):
            return None
        if content_withheld(message):
            self._warn_withheld()
            return None
        place = channel or await self._place(message.channel, message.channel.id)
        return message_event(message, place, self._view)

    async def _take_message(self, message: discord.Message, sink: EventSink) -> None:
        event = await self._read(message)
        if event is not None:
            await sink(event)

    async def _take_edit(self, payload: discord.RawMessageUpdateEvent, sink: EventSink) -> None:
        message = payload.message
        if self._mine(message):
            return
        place = await self._place(message.channel, payload.channel_id)
        event = edit_event(message, place, self._view)
        if event is not None:
            await sink(event)

    async def _take_delete(self, channel_id: int, ids: set[int], sink: EventSink) -> None:
        place = await self._place(None, channel_id)
        for event in delete_events(place, ids, None):
            await sink(event)

    async def _take_reaction(
        self, payload: discord.RawReactionActionEvent, sink: EventSink
    ) -> None:
        if payload.user_id == self._view.bot_id:
            return
        place = await self._place(None, payload.channel_id)
        await sink(reaction_event(payload, place, self.client.get_user(payload.user_id)))

    async def _on_slash(
        self, interaction: discord.Interaction, name: str, text: str | None
    ) -> None:
        # Discord drops an interaction not acknowledged within 3 s; the answer comes later.
        self._remember(interaction)
        try:
            await interaction.response.defer()
        except discord.HTTPException as exc:
            log.warning("discord: could not acknowledge /%s in time: %s", name, exc)
            self._interactions.pop(interaction.id, None)  # its answer goes to the channel
        self._enqueue(lambda sink: self._take_command(interaction, name, text, sink))

    async def _take_command(
        self, interaction: discord.Interaction, name: str, text: str | None, sink: EventSink
    ) -> None:
        place = await self._place(interaction.channel, interaction.channel_id or 0)
        await sink(command_event(interaction, name, text, place))

    async def _place(self, channel: discord.abc.Snowflake | None, channel_id: int) -> ChannelRef:
        """The ChannelRef of a channel, asking Discord for a thread's parent when neither the
        event nor the cache tells it."""
        found = channel_of(channel) or channel_of(self.client.get_channel(channel_id))
        if found is not None:
            return found
        known = self._places.get(channel_id)
        if known is not None:
            return known
        try:
            fetched = await self.client.fetch_channel(channel_id)
        except discord.HTTPException as exc:
            log.warning("discord: channel %s is unknown to copss and Discord: %s", channel_id, exc)
            return ChannelRef(PLATFORM, str(channel_id))
        found = channel_of(fetched) or ChannelRef(PLATFORM, str(channel_id))
        self._places[channel_id] = found
        return found

    def _warn_withheld(self) -> None:
        if self._warned_withheld:
            log.debug("discord: another message arrived without its text")
            return
        self._warned_withheld = True
        granted = content_intent_granted(self.client.application_flags)
        log.warning(
            "discord: a server message arrived without its text, so copss cannot read it. "
            "Discord withholds message text from bots without the Message Content intent "
            "(the application's settings %s it). Such messages are not stored. %s",
            "show" if granted else "do not show",
            ENABLE_MESSAGE_CONTENT,
        )

    # -- catching up ----------------------------------------------------------------------------

    async def _catch_up(self, sink: EventSink) -> None:
        """Feed what was said while no gateway session listened, oldest first per channel
        (a parent channel before its threads, so questions come before their answers)."""
        self.caught_up.clear()
        try:
            checkpoints = await self.checkpoints() if self.checkpoints is not None else []
            plan = catch_up_plan(checkpoints, self._readable())
            seen: set[int] = set()
            fed = 0
            for place, after in plan:
                fed += await self._read_history(place, after, seen, sink)
            if plan:
                log.info("discord: caught up on %d message(s) in %d channel(s)", fed, len(plan))
        finally:
            self.caught_up.set()

    def _readable(self) -> list[ChannelRef]:
        """Text channels and active threads (forum posts too) whose history copss may read."""
        places: list[ChannelRef] = []
        for guild in self.client.guilds:
            me = guild.me
            channels: list[discord.TextChannel | discord.Thread] = [
                *guild.text_channels,
                *guild.threads,
            ]
            for channel in channels:
                perms = channel.permissions_for(me)
                place = channel_of(channel)
                if place is not None and perms.read_message_history and perms.view_channel:
                    places.append(place)
        return places

    async def _read_history(
        self, place: ChannelRef, after: int, seen: set[int], sink: EventSink
    ) -> int:
        raw_id = place.thread_id or place.chat_id
        if not raw_id.isdigit():
            return 0
        channel = self.client.get_channel(int(raw_id)) or self.client.get_partial_messageable(
            int(raw_id)
        )
        if not isinstance(channel, discord.abc.Messageable):
            return 0
        fed = 0
        try:
            history = channel.history(limit=None, after=discord.Object(after), oldest_first=True)
            async for message in history:
                if message.id in seen:
                    continue
                seen.add(message.id)
                event = await self._read(message, place)
                if event is not None:
                    await sink(event)
                    fed += 1
        except discord.HTTPException as exc:
            # Access lost or channel deleted: nothing to read there; the rest still counts.
            log.warning("discord: could not catch up in %s: %s", place.key(), exc)
        return fed

    # -- sending --------------------------------------------------------------------------------

    def _remember(self, interaction: discord.Interaction) -> None:
        now = time.monotonic()
        for iid, (_, at) in list(self._interactions.items()):
            if now - at > INTERACTION_TTL:
                del self._interactions[iid]
        self._interactions[interaction.id] = (interaction, now)

    def _interaction(self, reply_to: str | None) -> discord.Interaction | None:
        iid = interaction_id(reply_to)
        entry = self._interactions.get(iid) if iid is not None else None
        if entry is None or time.monotonic() - entry[1] > INTERACTION_TTL:
            return None
        return entry[0]

    def _target(self, channel: ChannelRef) -> discord.PartialMessageable:
        raw = channel.thread_id or channel.chat_id
        if not raw.isdigit():
            raise AdapterError(f"not a Discord channel id: {raw!r}")
        return self.client.get_partial_messageable(int(raw))

    async def send(self, message: Outgoing) -> str:
        """Post in the channel or thread (split at 2000 characters), pinging nobody; a slash
        command's answer goes back through its interaction.

        A bridged copy (``as_name`` set) is posted through copss's webhook of the channel
        under the author's name; where webhooks are not allowed it is posted as the bot with
        the name in bold in front. Other messages are real replies posted as the bot.
        """
        if not message.text.strip():
            raise AdapterError("discord cannot post an empty message")
        interaction = self._interaction(message.reply_to)
        try:
            hook = None
            if message.as_name is not None and interaction is None:
                hook = await self._webhook_for(message.channel)
            for attempt in range(3):
                try:
                    return await self._send_chunks(message, interaction, hook)
                except _WebhookRefused as refused:
                    # Nothing was posted yet. A webhook deleted meanwhile is looked for (or
                    # made) once more; otherwise the copy goes out as the bot.
                    retry = refused.gone and attempt == 0
                    hook = await self._webhook_for(message.channel) if retry else None
            raise AdapterError("discord: no way left to post this message")  # not reached
        except AdapterError:
            raise
        except Exception as exc:
            error = adapter_error(exc)
            if error is None:
                raise
            raise error from exc

    async def _send_chunks(
        self,
        message: Outgoing,
        interaction: discord.Interaction | None,
        hook: discord.Webhook | None,
    ) -> str:
        key = message.key
        saved = self._posted.pop(key, None) if key else None
        if saved is None:
            head = self._copy_head(message, hook)
            chunks = split_text(message.text, MESSAGE_LIMIT - len(head), code_fences=True)
            chunks[0] = head + chunks[0]
            saved = _Partial(head, chunks, [])
        # A retry goes on from where the last attempt stopped, with the same chunks.
        chunks, posted = saved.chunks, saved.posted
        while len(posted) < len(chunks):
            index = len(posted)
            try:
                sent = None
                if interaction is not None:
                    sent = await self._answer(interaction, chunks[index], index)
                    if sent is None:
                        interaction = None  # expired: the rest goes to the channel
                if sent is None and hook is not None:
                    sent = await self._post_hooked(hook, message, chunks[index])
                    if index == 0:
                        saved.webhook_id = hook.id
                if sent is None:
                    sent = await self._post(message, chunks[index], index)
            except Exception as exc:
                if hook is not None and _webhook_trouble(exc):
                    self._webhook_failed(message.channel, exc)
                    if not posted:
                        raise _WebhookRefused(_webhook_gone(exc)) from exc
                    hook = None  # the rest of a message already begun goes as the bot
                    continue
                error = adapter_error(exc)
                if key and posted and isinstance(error, TransientAdapterError):
                    self._posted[key] = saved
                raise
            posted.append(sent)
        self._note_copy(
            int(posted[0]), _Copy(saved.webhook_id, saved.head, tuple(int(p) for p in posted))
        )
        return posted[0]

    def _copy_head(self, message: Outgoing, hook: discord.Webhook | None) -> str:
        """What goes before the text: a webhook copy links the message it answers (webhook
        messages cannot be replies); a copy posted as the bot names its author."""
        if hook is not None:
            reply = message.reply_to
            if not reply or not reply.isdigit() or not message.channel.chat_id.isdigit():
                return ""
            place = self.client.get_channel(int(message.channel.chat_id))
            guild = getattr(place, "guild", None)
            if guild is None:
                return ""
            return reply_line(guild.id, message.channel.thread_id or message.channel.chat_id, reply)
        if message.as_name is not None:
            return name_prefix(message.as_name)
        return ""

    def _note_copy(self, message_id: int, copy: _Copy) -> None:
        self._copies[message_id] = copy
        self._copies.move_to_end(message_id)
        while len(self._copies) > REMEMBERED_MESSAGES:
            self._copies.popitem(last=False)

    async def _post(self, message: Outgoing, text: str, index: int) -> str:
        target = self._target(message.channel)
        # discord.py sends every message with enforce_nonce; a stable nonce makes Discord
        # hand back the message an attempt that looked failed had already created.
        nonce = (
            message_nonce(message.key, message.channel, index, text)
            if message.key
            else secrets.randbits(63)
        )
        if index == 0 and message.reply_to and message.reply_to.isdigit():
            # A reply to a message deleted meanwhile is posted as a plain message.
            reference = discord.MessageReference(
                message_id=int(message.reply_to), channel_id=target.id, fail_if_not_exists=False
            )
            sent = await target.send(
                text, reference=reference, allowed_mentions=NO_MENTIONS, nonce=nonce
            )
        else:
            sent = await target.send(text, allowed_mentions=NO_MENTIONS, nonce=nonce)
        return str(sent.id)

    async def _post_hooked(self, hook: discord.Webhook, message: Outgoing, text: str) -> str:
        # Webhook executions take no nonce; the outbox retries only what surely failed.
        sent = await hook.send(
            text,
            username=webhook_username(message.as_name or ""),
            allowed_mentions=NO_MENTIONS,
            wait=True,
            thread=_thread(message.channel),
        )
        return str(sent.id)

    async def _answer(self, interaction: discord.Interaction, text: str, index: int) -> str | None:
        """Answer through the interaction: the first chunk replaces the "thinking…" message,
        the rest follow up. None when Discord no longer knows the interaction."""
        try:
            if index == 0:
                sent: discord.Message = await interaction.edit_original_response(
                    content=text, allowed_mentions=NO_MENTIONS
                )
            else:
                sent = await interaction.followup.send(
                    text, allowed_mentions=NO_MENTIONS, wait=True
                )
        except discord.HTTPException as exc:
            if exc.status not in (401, 404):
                raise
            # 401/404: the interaction's 15 minutes are over (or it was never acknowledged).
            self._interactions.pop(interaction.id, None)
            return None
        return str(sent.id)

    # -- webhooks -------------------------------------------------------------------------------

    async def _webhook_for(self, channel: ChannelRef) -> discord.Webhook | None:
        """copss's webhook of the channel (a thread posts through its parent's): found by name
        and application id, made once if there is none; None where copss may not have one
        (no Manage Webhooks, a DM, Discord refusing), asked again after a while."""
        if not channel.chat_id.isdigit():
            return None
        cid = int(channel.chat_id)
        hook = self._hooks.get(cid)
        if hook is not None:
            return hook
        refused_at = self._no_hooks.get(cid)
        if refused_at is not None and time.monotonic() - refused_at < WEBHOOK_RETRY_AFTER:
            return None
        # One lookup per channel at a time, so two sends never both make a webhook.
        async with self._hook_locks.setdefault(cid, asyncio.Lock()):
            hook = self._hooks.get(cid)
            if hook is not None:
                return hook
            try:
                hook = await self._find_or_make_webhook(cid)
            except discord.HTTPException as exc:
                if exc.status >= 500 or exc.status == 429:
                    raise  # Discord is struggling: the outbox tries again later
                log.warning(
                    "discord: no webhook in channel %s (%s): copies go as the bot", cid, exc
                )
                hook = None
            if hook is None:
                self._no_hooks[cid] = time.monotonic()
                return None
            self._hooks[cid] = hook
            self._hook_ids.add(hook.id)
            self._no_hooks.pop(cid, None)
            return hook

    async def _find_or_make_webhook(self, channel_id: int) -> discord.Webhook | None:
        place = self.client.get_channel(channel_id)
        if place is not None:
            if not isinstance(place, discord.abc.GuildChannel):
                return None  # DMs and group DMs have no webhooks
            me = place.guild.me
            if me is not None and not place.permissions_for(me).manage_webhooks:
                log.info(
                    "discord: copss lacks Manage Webhooks in #%s; bridged copies are posted as "
                    "the bot with the author's name in front",
                    place.name,
                )
                return None
        for data in await self.client.http.channel_webhooks(channel_id):
            if is_copss_webhook(data, self._view):
                return self._bind_webhook(data)
        made = await self.client.http.create_webhook(
            channel_id, name=WEBHOOK_NAME, reason="copss posts bridged messages as their authors"
        )
        log.info("discord: made the webhook %r in channel %s", WEBHOOK_NAME, channel_id)
        return self._bind_webhook(made)

    def _bind_webhook(self, data: Any) -> discord.Webhook | None:
        token = data.get("token")
        if not token:
            return None
        return discord.Webhook.partial(int(data["id"]), str(token), client=self.client)

    def _webhook_failed(self, channel: ChannelRef, exc: BaseException) -> None:
        """Learn from a failed webhook call: a deleted webhook is looked for (or made) again
        next time; a refused one is not asked for again for a while. Any other refusal (a
        username Discord does not take, say) concerns that message only."""
        if not channel.chat_id.isdigit():
            return
        cid = int(channel.chat_id)
        if _webhook_gone(exc):
            gone = self._hooks.pop(cid, None)
            log.warning("discord: webhook %s of channel %s is gone", gone and gone.id, cid)
        elif isinstance(exc, discord.HTTPException) and exc.status == 403:
            self._hooks.pop(cid, None)
            self._no_hooks[cid] = time.monotonic()
            log.warning("discord: webhook refused in channel %s; copies go as the bot", cid)
        else:
            log.info("discord: a copy went as the bot after its webhook post failed: %s", exc)

    async def _posted_copy(self, channel: ChannelRef, message_id: int) -> _Copy | None:
        """What copss knows of a message it posted: remembered since it was sent, else read
        from Discord (after a restart); None when the message no longer exists."""
        known = self._copies.get(message_id)
        if known is not None:
            return known
        try:
            found = await self._target(channel).fetch_message(message_id)
        except discord.NotFound:
            return None
        mine = self._mine(found)
        # An interaction's answer carries the application's id as webhook id, but it is the
        # bot's own message, edited and deleted as such.
        hooked = mine and found.webhook_id is not None and found.author.id != self._view.bot_id
        head = copy_head(found.content, webhook=hooked) if mine else ""
        return _Copy(found.webhook_id if hooked else None, head, (message_id,))

    def _mine(self, message: discord.Message) -> bool:
        """Whether copss posted it: as the bot, through the application, or a webhook of its."""
        return is_own(message, self._view) or (
            message.webhook_id is not None and message.webhook_id in self._hook_ids
        )

    # -- editing and deleting -------------------------------------------------------------------

    async def edit(
        self, channel: ChannelRef, message_id: str, text: str, *, as_name: str | None = None
    ) -> None:
        """Edit a message copss posted, keeping what it put before the text (the author of a
        copy, a reply link); a copy posted through a webhook is edited through that webhook.
        Text beyond 2000 characters is cut, marked with …"""
        try:
            mid = int(message_id)
            copy = await self._posted_copy(channel, mid)
            if copy is None:
                raise AdapterError(f"discord message {message_id} no longer exists")
            room = MESSAGE_LIMIT - len(copy.head)
            if len(text) > room:
                text = split_text(text, room - 1, code_fences=True)[0] + "…"
            content = copy.head + text
            if copy.webhook_id is None:
                partial = self._target(channel).get_partial_message(mid)
                await partial.edit(content=content, allowed_mentions=NO_MENTIONS)
                return
            hook = await self._webhook_for(channel)
            if hook is None or hook.id != copy.webhook_id:
                raise AdapterError(f"discord message {mid} was posted through a lost webhook")
            await hook.edit_message(
                mid, content=content, allowed_mentions=NO_MENTIONS, thread=_thread(channel)
            )
        except AdapterError:
            raise
        except Exception as exc:
            raise (adapter_error(exc) or exc) from exc

    async def delete(self, channel: ChannelRef, message_id: str) -> None:
        """Delete a message (the bot's own with every chunk it was split into, a webhook copy
        through its webhook, or a member's with Manage Messages); a message that is already
        gone counts as deleted."""
        try:
            mid = int(message_id)
            copy = await self._posted_copy(channel, mid)
            if copy is None:
                return
            hook = None
            if copy.webhook_id is not None:
                current = await self._webhook_for(channel)
                hook = current if current is not None and current.id == copy.webhook_id else None
            for part in copy.chunk_ids:
                with contextlib.suppress(discord.NotFound):
                    if hook is not None:
                        try:
                            await hook.delete_message(part, thread=_thread(channel))
                            continue
                        except discord.NotFound:
                            pass  # a chunk that went as the bot (the webhook failed there)
                    await self._target(channel).get_partial_message(part).delete()
            self._copies.pop(mid, None)
        except AdapterError:
            raise
        except Exception as exc:
            raise (adapter_error(exc) or exc) from exc

    # -- permissions ----------------------------------------------------------------------------

    async def is_admin(self, channel: ChannelRef, user_id: str) -> bool:
        """Asked of Discord now: the member is fetched (not read from a cache) and counts as an
        admin with Administrator, Manage Server or Manage Messages. Never in DMs."""
        if not user_id.isdigit():
            return False
        guild = await self._guild_of(channel)
        if guild is None:
            return False
        try:
            member = await guild.fetch_member(int(user_id))
        except discord.NotFound:
            return False  # not (or no longer) in the server
        except discord.HTTPException as exc:
            log.warning("discord: could not look up member %s: %s", user_id, exc)
            return False
        perms = member.guild_permissions
        return perms.administrator or perms.manage_guild or perms.manage_messages

    async def _guild_of(self, channel: ChannelRef) -> discord.Guild | None:
        if not channel.chat_id.isdigit():
            return None
        chat_id = int(channel.chat_id)
        found = self.client.get_channel(chat_id)
        if found is None:
            try:
                found = await self.client.fetch_channel(chat_id)
            except discord.HTTPException as exc:
                log.warning("discord: could not look up channel %s: %s", chat_id, exc)
                return None
        guild = getattr(found, "guild", None)
        if guild is None:
            return None  # a DM or group DM
        if isinstance(guild, discord.Guild):
            return guild
        try:
            # Known only by id (not cached): its roles are needed to compute permissions.
            return await self.client.fetch_guild(guild.id)
        except discord.HTTPException as exc:
            log.warning("discord: could not look up server %s: %s", guild.id, exc)
            return None
