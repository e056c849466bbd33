"""What a copss process serves: ``copss run --role`` and ``[run] role`` pick the platforms,
``[discord] shard_count`` and ``shard_ids`` the Discord gateway shards."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import discord
import pytest

from adapters.base import Checkpoints
from adapters.discord import DiscordAdapter
from adapters.telegram import TelegramAdapter
from bot import cli
from bot.app import App, build_adapters
from bot.config import (
    Config,
    ConfigError,
    MatchingConfig,
    StorageConfig,
    load_config,
    with_role,
)
from bot.events import ChannelRef, Event, MessageEvent
from tests.adapters.dc_harness import MENU, TOKEN
from tests.conftest import ENGINES, store_url
from tests.fakes.discord_gateway import JSON, FakeDiscord, patch_discord

# Tokens get masked in every log line from then on: long ones, so nothing else is masked.
TG_TOKEN = "4242:role-tests-telegram-token-xyz"
DC_TOKEN = "role-tests-discord-token-xyz"
TG = {"COPSS_TELEGRAM_TOKEN": TG_TOKEN}
DC = {"COPSS_DISCORD_TOKEN": DC_TOKEN}
BOTH = TG | DC


def config(tmp_path: Path, text: str = "", env: dict[str, str] | None = None) -> Config:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_config(path, env=BOTH if env is None else env)


def platforms(cfg: Config) -> list[str]:
    return [adapter.platform for adapter in build_adapters(cfg)]


# -- roles -------------------------------------------------------------------------------------


def test_without_a_role_every_configured_platform_runs(tmp_path: Path) -> None:
    assert platforms(config(tmp_path)) == ["telegram", "discord"]


def test_the_role_in_the_config_picks_the_platforms(tmp_path: Path) -> None:
    assert platforms(config(tmp_path, '[run]\nrole = ["discord"]\n')) == ["discord"]
    assert platforms(config(tmp_path, '[run]\nrole = ["telegram"]\n')) == ["telegram"]


def test_the_role_option_overrides_the_config(tmp_path: Path) -> None:
    cfg = config(tmp_path, '[run]\nrole = ["discord"]\n')
    assert platforms(with_role(cfg, "telegram")) == ["telegram"]
    assert platforms(with_role(cfg, " Telegram , discord ")) == ["telegram", "discord"]


def test_console_runs_only_when_the_role_names_it(tmp_path: Path) -> None:
    cfg = config(tmp_path, "[console]\nenabled = true\n")
    assert platforms(with_role(cfg, "telegram")) == ["telegram"]
    assert not with_role(cfg, "telegram").console_enabled
    assert with_role(cfg, "telegram,console").console_enabled
    assert with_role(config(tmp_path, env={}), "console").console_enabled


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[run]\nrole = ["matrix"]\n', "'run.role' entries are telegram, discord, console"),
        ('[run]\nrole = "telegram"\n', "'run.role' must be a list of strings"),
        ("[discord]\nshard_ids = [0]\n", "'discord.shard_ids' needs 'discord.shard_count'"),
        ("[discord]\nshard_count = 2\nshard_ids = [2]\n", "from 0 to shard_count - 1 (1)"),
        ("[discord]\nshard_count = 2\nshard_ids = [1, 1]\n", "names a shard twice"),
        ("[discord]\nshard_count = 2\nshard_ids = ['1']\n", "must be a list of whole numbers"),
        ("[discord]\nshard_count = -1\n", "'discord.shard_count' must be 0"),
    ],
)
def test_wrong_roles_and_shards_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config(tmp_path, text)


def test_a_role_needs_the_platforms_token(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="names discord but no Discord token"):
        config(tmp_path, '[run]\nrole = ["discord"]\n', env=TG)
    cfg = config(tmp_path, env=TG)
    with pytest.raises(ConfigError, match=r"^--role: the role names discord"):
        with_role(cfg, "discord")
    with pytest.raises(ConfigError, match="--role: name one or more"):
        with_role(cfg, " , ")


def test_run_refuses_a_role_it_cannot_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COPSS_HOME", str(tmp_path))
    monkeypatch.setenv("COPSS_TELEGRAM_TOKEN", TG_TOKEN)
    monkeypatch.delenv("COPSS_DISCORD_TOKEN", raising=False)
    assert cli.main(["run", "--role", "discord"]) == cli.EXIT_USAGE
    assert "copss: --role: the role names discord but no Discord token" in capsys.readouterr().err
    assert cli.main(["run", "--role", "irc"]) == cli.EXIT_USAGE
    assert "'run.role' entries are telegram, discord, console, not 'irc'" in (
        capsys.readouterr().err
    )


def test_run_hands_the_role_to_the_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COPSS_TELEGRAM_TOKEN", TG_TOKEN)
    monkeypatch.setenv("COPSS_DISCORD_TOKEN", DC_TOKEN)
    seen: list[Config] = []

    async def run(cfg: Config) -> int:
        seen.append(cfg)
        return 0

    monkeypatch.setattr(cli, "_run", run)
    assert cli.main(["run", "--role", "discord"]) == 0
    assert seen[0].run.role == ("discord",) and platforms(seen[0]) == ["discord"]


# -- Discord shards ----------------------------------------------------------------------------


def test_shards_are_passed_to_discord_py(tmp_path: Path) -> None:
    (plain,) = build_adapters(config(tmp_path, env=DC))
    assert isinstance(plain, DiscordAdapter)
    assert not isinstance(plain.client, discord.AutoShardedClient)
    assert (plain.client.shard_id, plain.client.shard_count) == (None, None)

    (one,) = build_adapters(config(tmp_path, "[discord]\nshard_count = 4\nshard_ids = [2]\n", DC))
    assert isinstance(one, DiscordAdapter)
    assert not isinstance(one.client, discord.AutoShardedClient)
    assert (one.client.shard_id, one.client.shard_count) == (2, 4)

    (some,) = build_adapters(
        config(
            tmp_path,
            "[discord]\nshard_count = 4\nshard_ids = [1, 3]\n",
            DC,
        )
    )
    assert isinstance(some, DiscordAdapter)
    assert isinstance(some.client, discord.AutoShardedClient)
    assert (some.client.shard_ids, some.client.shard_count) == ([1, 3], 4)

    (every,) = build_adapters(config(tmp_path, "[discord]\nshard_count = 2\n", DC))
    assert isinstance(every, DiscordAdapter)
    assert isinstance(every.client, discord.AutoShardedClient)
    assert (every.client.shard_ids, every.client.shard_count) == ([0, 1], 2)


#: Guilds on shard 0 and shard 1 of 2: Discord routes a guild to (id >> 22) % shard_count.
EVEN, ODD = 10 << 22, 11 << 22
EVEN_CHANNEL, ODD_CHANNEL = 900_000_000_000_000_010, 900_000_000_000_000_011
ALICE = 900_000_000_000_000_100


class ShardedFake(FakeDiscord):
    """The fake, but a gateway session identified with a shard gets only that shard's servers
    (and direct messages only on shard 0), as on Discord."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shards: dict[str, tuple[int, int]] = {}

    async def _emit(self, session: Any, event: str, data: JSON) -> None:
        if event == "READY" and "shard" in data:
            shard = (int(data["shard"][0]), int(data["shard"][1]))
            self.shards[session.session_id] = shard
            data = {**data, "guilds": [g for g in data["guilds"] if _on(shard, int(g["id"]))]}
        shard_of = self.shards.get(session.session_id)
        if shard_of is not None:
            guild = data.get("id") if event.startswith("GUILD_") else data.get("guild_id")
            if guild is not None and not _on(shard_of, int(guild)):
                return
            if guild is None and event.startswith("MESSAGE") and shard_of[0] != 0:
                return
        await super()._emit(session, event, data)


def _on(shard: tuple[int, int], guild: int) -> bool:
    return (guild >> 22) % shard[1] == shard[0]


@pytest.fixture
async def fake() -> AsyncIterator[ShardedFake]:
    async with ShardedFake(token=TOKEN) as sharded:
        for guild, channel in ((EVEN, EVEN_CHANNEL), (ODD, ODD_CHANNEL)):
            sharded.add_guild(guild, f"guild {guild}")
            sharded.add_channel(guild, channel, "general")
            sharded.add_member(guild, ALICE, "alice")
        with patch_discord(sharded):
            yield sharded


class Received:
    """What an adapter handed to the hub."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    async def sink(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    def chats(self) -> set[str]:
        """The channels messages came from."""
        return {e.channel.chat_id for e in self.events if isinstance(e, MessageEvent)}

    async def wait_chats(self, count: int) -> None:
        async with asyncio.timeout(10):
            while len(self.chats()) < count:
                self._changed.clear()
                await self._changed.wait()


@contextlib.asynccontextmanager
async def running(checkpoints: Checkpoints | None = None, **shards: Any) -> AsyncIterator[Received]:
    """A Discord adapter with ``shards`` running against the fake; yields what it received."""
    adapter = DiscordAdapter(TOKEN, commands=MENU, guild_ready_timeout=0.05, **shards)
    adapter.checkpoints = checkpoints

    async def no_wait(shard_id: int | None, *, initial: bool = False) -> None:
        return None  # discord.py waits 5 s between identifying two shards; the fake does not

    adapter.client.before_identify_hook = no_wait  # type: ignore[method-assign]
    received = Received()
    task = asyncio.create_task(adapter.start(received.sink))
    try:
        async with asyncio.timeout(15):
            await adapter.caught_up.wait()
        yield received
    finally:
        await adapter.close()
        async with asyncio.timeout(15):
            await task


async def test_two_processes_with_one_shard_each_split_the_servers(fake: ShardedFake) -> None:
    async with (
        running(shard_count=2, shard_ids=[0]) as first,
        running(shard_count=2, shard_ids=[1]) as second,
    ):
        await fake.user_message(EVEN_CHANNEL, ALICE, "hello from the even server")
        await fake.user_message(ODD_CHANNEL, ALICE, "hello from the odd server")
        await first.wait_chats(1)
        await second.wait_chats(1)
        await asyncio.sleep(0.2)  # nothing more comes
    assert first.chats() == {str(EVEN_CHANNEL)}
    assert second.chats() == {str(ODD_CHANNEL)}
    assert sorted(fake.shards.values()) == [(0, 2), (1, 2)]


async def test_one_process_runs_every_shard(fake: ShardedFake) -> None:
    async with running(shard_count=2) as received:
        await fake.user_message(EVEN_CHANNEL, ALICE, "hello from the even server")
        await fake.user_message(ODD_CHANNEL, ALICE, "hello from the odd server")
        await received.wait_chats(2)
    assert received.chats() == {str(EVEN_CHANNEL), str(ODD_CHANNEL)}
    assert sorted(fake.shards.values()) == [(0, 2), (1, 2)]


async def test_each_process_catches_up_on_its_own_servers(fake: ShardedFake) -> None:
    gone = 900_000_000_000_000_099  # no server here knows it: deleted, or a direct message
    stored = [EVEN_CHANNEL, ODD_CHANNEL, gone]

    async def checkpoints() -> list[tuple[ChannelRef, str]]:
        return [(ChannelRef("discord", str(c), None), "1") for c in stored]

    def read() -> set[int]:
        return {
            int(c.path.split("/")[2])
            for c in fake.calls
            if c.method == "GET" and c.path.endswith("/messages")
        }

    async with running(checkpoints, shard_count=2, shard_ids=[1]):
        pass
    assert read() == {ODD_CHANNEL}
    fake.calls.clear()
    async with running(checkpoints, shard_count=2, shard_ids=[0]):
        pass
    # Shard 0 also reads what none of its servers holds: another shard's channel, or one
    # deleted meanwhile, or direct messages (Discord sends those to shard 0).
    assert read() == {EVEN_CHANNEL, ODD_CHANNEL, gone}
    fake.calls.clear()
    async with running(checkpoints):  # not sharded: every stored channel
        pass
    assert read() == set(stored)


# -- who receives Telegram's updates -----------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
async def test_telegram_takes_turns_only_on_postgresql(engine: str, tmp_path: Path) -> None:
    async with store_url(engine, tmp_path) as url:
        telegram = TelegramAdapter(TG_TOKEN, base_url="http://127.0.0.1:9/bot")
        cfg = Config(storage=StorageConfig(url=url), matching=MatchingConfig(model=""))
        async with App(cfg, adapters=[telegram]):
            # SQLite: one process per store, so it receives at once; PostgreSQL: while it
            # leads the processes on the store (tests/test_failover.py).
            assert (telegram.receive_turn is not None) == (engine == "postgres")
