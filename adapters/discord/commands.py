"""Slash commands and their interactions.

copss offers its commands to Discord as slash commands at login, acknowledges each use
within Discord's three seconds, hands it to the intake as a command event, and answers it
later through the interaction while Discord still accepts that (15 minutes). Text commands
(the prefix and a command name) need no registration: translating a message finds them.

The answers to personal commands are private: every chunk of them goes through the
interaction as an ephemeral message, and one that cannot (the acknowledgement failed, or the
interaction expired) goes to the member by DM, never into the channel (see
:class:`~adapters.discord.sending.Sender`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import discord
from discord import app_commands

from adapters.discord.client import NO_MENTIONS, CopssClient
from adapters.discord.intake import Intake
from adapters.discord.translate import interaction_id

log = logging.getLogger(__name__)

#: How long Discord accepts answers through an interaction's webhook.
INTERACTION_TTL = 15 * 60.0
#: Commands whose slash answers only the member who ran them sees (their own search, their
#: own data).
PRIVATE_COMMANDS = frozenset({"ask", "forget", "optout", "optin"})


class SlashCommands:
    """The slash commands copss offers, and the interactions it may still answer."""

    def __init__(
        self, client: CopssClient, intake: Intake, commands: Sequence[tuple[str, str]]
    ) -> None:
        self.client = client
        self.intake = intake
        self.commands = commands
        self._interactions: dict[int, tuple[discord.Interaction, float]] = {}

    async def register(self) -> None:
        """Offer every command (name, summary) as a global slash command; a command Discord
        does not take, or a failed sync, is logged and copss carries on."""
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
        @app_commands.describe(text="what to ask, or the command's arguments")
        async def invoke(interaction: discord.Interaction, text: str | None = None) -> None:
            await self._on_slash(interaction, name, text)

        description = (summary or name)[:100]  # Discord's limit
        return app_commands.Command(name=name, description=description, callback=invoke)

    async def _on_slash(
        self, interaction: discord.Interaction, name: str, text: str | None
    ) -> None:
        # Discord drops an interaction not acknowledged within 3 s; the answer comes later.
        # Personal commands are answered privately (only the member sees the answer).
        private = name in PRIVATE_COMMANDS
        self._remember(interaction)
        try:
            await interaction.response.defer(ephemeral=private)
        except discord.HTTPException as exc:
            # The interaction cannot carry the answer: a private one goes by DM, a public
            # one to the channel.
            log.warning(
                "discord: could not acknowledge /%s in time (%s); its answer goes %s",
                name,
                exc,
                "to the member by DM" if private else "to the channel",
            )
            self._interactions.pop(interaction.id, None)
        intake = self.intake
        intake.enqueue(
            lambda sink: intake.take_command(interaction, name, text, sink, private=private)
        )

    def _remember(self, interaction: discord.Interaction) -> None:
        now = time.monotonic()
        for iid, (_, at) in list(self._interactions.items()):
            if now - at > INTERACTION_TTL:
                del self._interactions[iid]
        self._interactions[interaction.id] = (interaction, now)

    def interaction(self, reply_to: str | None) -> discord.Interaction | None:
        """The interaction a message answers (``reply_to`` names it), if it can still be
        answered through it."""
        iid = interaction_id(reply_to)
        entry = self._interactions.get(iid) if iid is not None else None
        if entry is None or time.monotonic() - entry[1] > INTERACTION_TTL:
            return None
        return entry[0]

    async def answer(
        self, interaction: discord.Interaction, text: str, index: int, *, private: bool = False
    ) -> str | None:
        """Answer through the interaction: the first chunk replaces the "thinking…" message
        (private when the acknowledgement was), the rest follow up, each one private too when
        ``private``. None when Discord no longer knows the interaction."""
        try:
            if index == 0:
                sent: discord.Message = await interaction.edit_original_response(
                    content=text, allowed_mentions=NO_MENTIONS
                )
            else:
                # A follow-up is public unless it says otherwise, whatever the first was.
                sent = await interaction.followup.send(
                    text, allowed_mentions=NO_MENTIONS, wait=True, ephemeral=private
                )
        except discord.HTTPException as exc:
            if exc.status not in (401, 404):
                raise
            # 401/404: the interaction's 15 minutes are over (or it was never acknowledged).
            self._interactions.pop(interaction.id, None)
            return None
        return str(sent.id)
