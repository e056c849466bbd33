"""A chat that moved to a new id keeps its history: channels and queued messages follow."""

from __future__ import annotations

from sqlalchemy import select, update

from bot.core import Context
from bot.events import Event, MigrateEvent
from storage.models import Channel, Message, OutboxMessage


async def migrate_chat(event: Event, ctx: Context) -> bool:
    """Handler: move every record of the old chat id to the new one."""
    if not isinstance(event, MigrateEvent):
        return False
    platform, old, new = event.channel.platform, event.channel.chat_id, event.new_chat_id
    channels = (
        await ctx.session.scalars(
            select(Channel).where(Channel.platform == platform, Channel.chat_id == old)
        )
    ).all()
    for channel in channels:
        target = await ctx.session.scalar(
            select(Channel).where(
                Channel.platform == platform,
                Channel.chat_id == new,
                Channel.thread_id == channel.thread_id,
            )
        )
        if target is None:
            channel.chat_id = new
            continue
        # Messages already arrived in the new chat: fold the old channel into it.
        await ctx.session.execute(
            update(Message).where(Message.channel_id == channel.id).values(channel_id=target.id)
        )
        await ctx.session.delete(channel)
    await ctx.session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.platform == platform,
            OutboxMessage.chat_id == old,
            OutboxMessage.state == "pending",
        )
        .values(chat_id=new, reply_to=None)
    )
    return True
