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
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import discord
from discord import app_commands

from adapters.base import Adapter, AdapterError, EventSink, TransientAdapterError
from adapters.discord.translate import (
    MESSAGE_LIMIT,
    PLATFORM,
    BotView,
    adapter_error,
    catch_up_plan,
    channel_of,
    command_event,
    content_intent_granted,
    content_withheld,
    delete_events,
    edit_event,
    interaction_id,
    is_own,
    message_event,
    message_nonce,
    reaction_event,
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
        # where it failed (interaction follow-ups have no nonce to make a repeat harmless).
        self._posted: dict[str, list[str]] = {}
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
        if is_own(message, self._view):
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
        if is_own(message, self._view):
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
        """Post in the channel or thread (split at 2000 characters), as a real reply, pinging
        nobody; a slash command's answer goes back through its interaction."""
        if not message.text.strip():
            raise AdapterError("discord cannot post an empty message")
        chunks = split_text(message.text, MESSAGE_LIMIT, code_fences=True)
        interaction = self._interaction(message.reply_to)
        posted = self._posted.pop(message.key, []) if message.key else []
        try:
            for index in range(len(posted), len(chunks)):
                sent = None
                if interaction is not None:
                    sent = await self._answer(interaction, chunks[index], index)
                    if sent is None:
                        interaction = None  # expired: the rest goes to the channel
                if sent is None:
                    sent = await self._post(message, chunks[index], index)
                posted.append(sent)
        except Exception as exc:
            error = adapter_error(exc)
            if error is None:
                raise
            if message.key and posted and isinstance(error, TransientAdapterError):
                self._posted[message.key] = posted
            if error is exc:
                raise
            raise error from exc
        return posted[0]

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

    async def edit(self, channel: ChannelRef, message_id: str, text: str) -> None:
        """Edit a message the bot sent (text beyond 2000 characters is cut, marked with …)."""
        if len(text) > MESSAGE_LIMIT:
            text = split_text(text, MESSAGE_LIMIT - 1, code_fences=True)[0] + "…"
        try:
            partial = self._target(channel).get_partial_message(int(message_id))
            await partial.edit(content=text, allowed_mentions=NO_MENTIONS)
        except Exception as exc:
            raise (adapter_error(exc) or exc) from exc

    async def delete(self, channel: ChannelRef, message_id: str) -> None:
        """Delete a message (the bot's own, or a member's with Manage Messages); a message that
        is already gone counts as deleted."""
        try:
            await self._target(channel).get_partial_message(int(message_id)).delete()
        except discord.NotFound:
            return
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
