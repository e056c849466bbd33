"""Bot commands: one command set, the same words on every platform."""

from __future__ import annotations

from bot.features.commands.base import Command, Invocation, Services, UsageError
from bot.features.commands.bridges import BRIDGE_COMMANDS
from bot.features.commands.community import COMMUNITY_COMMANDS
from bot.features.commands.dispatcher import Commands
from bot.features.commands.knowledge import KNOWLEDGE_COMMANDS
from bot.features.commands.member import MEMBER_COMMANDS, help_command
from bot.features.commands.outbox import OUTBOX_COMMANDS


def all_commands() -> list[Command]:
    """Every command, members' first, ``help`` at the top."""
    commands = [
        *MEMBER_COMMANDS,
        *KNOWLEDGE_COMMANDS,
        *COMMUNITY_COMMANDS,
        *OUTBOX_COMMANDS,
        *BRIDGE_COMMANDS,
    ]
    return [help_command(commands), *commands]


def reference_table() -> str:
    """The Markdown command reference the README carries (a test keeps them equal)."""
    rows = ["| command | who | what it does |", "|---|---|---|"]
    for cmd in all_commands():
        usage = cmd.usage.replace("|", "\\|")
        rows.append(f"| `{usage}` | {'admins' if cmd.admin else 'everyone'} | {cmd.summary} |")
    return "\n".join(rows)


def build_commands(services: Services) -> Commands:
    """The command handler with every command."""
    return Commands(services, all_commands())


__all__ = [
    "Command",
    "Commands",
    "Invocation",
    "Services",
    "UsageError",
    "all_commands",
    "build_commands",
    "reference_table",
]
