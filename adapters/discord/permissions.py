"""Who may administer a channel's server, asked of Discord at the moment it matters."""

from __future__ import annotations

import logging

import discord

from bot.events import ChannelRef

log = logging.getLogger(__name__)


async def is_admin(client: discord.Client, channel: ChannelRef, user_id: str) -> bool:
    """Asked of Discord now: the member is fetched (not read from a cache) and counts as an
    admin with Administrator, Manage Server or Manage Messages. Never in DMs."""
    if not user_id.isdigit():
        return False
    guild = await _guild_of(client, channel)
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


async def _guild_of(client: discord.Client, channel: ChannelRef) -> discord.Guild | None:
    if not channel.chat_id.isdigit():
        return None
    chat_id = int(channel.chat_id)
    found = client.get_channel(chat_id)
    if found is None:
        try:
            found = await client.fetch_channel(chat_id)
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
        return await client.fetch_guild(guild.id)
    except discord.HTTPException as exc:
        log.warning("discord: could not look up server %s: %s", guild.id, exc)
        return None
