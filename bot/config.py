"""Configuration: a TOML file read with ``tomllib`` into frozen dataclasses, plus secrets from
the environment. Every problem raises :class:`ConfigError` naming the key and the file."""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from storage.engine import default_database_url


class ConfigError(Exception):
    """The configuration is wrong; the message says where and how."""


class Secret:
    """A token that never shows itself in ``repr``/``str`` (and so never in logs)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for handing to the platform client only."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class StorageConfig:
    """``url``: any SQLAlchemy async URL; default a SQLite file (see README)."""

    url: str = field(default_factory=default_database_url)


@dataclass(frozen=True)
class MatchingConfig:
    """Confidence gate thresholds (0..1)."""

    #: Confidence levels; None: the levels calibrated for the matcher in use (semantic or
    #: words only, see faq.semantic.SEMANTIC_GATE and faq.matcher.Gate).
    answer_at: float | None = None
    suggest_at: float | None = None
    max_suggestions: int = 3
    load_starter_kb: bool = True
    #: The sentence-embedding model for semantic matching ("" for words only); see
    #: faq.embedding.KNOWN_MODELS and README "Semantic matching".
    model: str = "all-MiniLM-L6-v2"
    #: Download the model into the data folder at first start when it is not there yet
    #: (``COPSS_FETCH_MODEL=0`` in the environment turns this off too).
    fetch_model: bool = True


@dataclass(frozen=True)
class ConsoleConfig:
    """The terminal chat. ``enabled`` defaults to on when no platform token is configured."""

    enabled: bool | None = None
    user: str = "you"


@dataclass(frozen=True)
class DiscordConfig:
    """Discord bot settings; the token may come from ``COPSS_DISCORD_TOKEN``."""

    token: Secret | None = None
    command_prefix: str = "!"
    #: Gateway shards: how many the bot has in all (0: no sharding, one connection), and
    #: which of them this process runs (empty: every one). Several processes on one
    #: PostgreSQL store split the shards between them; Discord sends each server's events
    #: to the shard ``(server id >> 22) % shard_count`` only.
    shard_count: int = 0
    shard_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class TelegramConfig:
    """Telegram bot settings; the token may come from ``COPSS_TELEGRAM_TOKEN``."""

    token: Secret | None = None
    base_url: str = "https://api.telegram.org/bot"
    mode: str = "polling"
    webhook_url: str = ""
    #: Telegram sends it back on every webhook call; made at start when not set.
    webhook_secret: Secret | None = None
    #: Where the webhook server binds: behind a reverse proxy that terminates TLS.
    listen: str = "127.0.0.1"
    port: int = 8443


#: Sites whose links count as citing an official source in ``copss report`` (a domain counts
#: with every subdomain): national government, its agencies, and the largest municipalities.
DEFAULT_OFFICIAL_DOMAINS: tuple[str, ...] = (
    "government.nl",
    "rijksoverheid.nl",
    "overheid.nl",
    "business.gov.nl",
    "netherlandsworldwide.nl",
    "belastingdienst.nl",
    "toeslagen.nl",
    "ind.nl",
    "digid.nl",
    "mijnoverheid.nl",
    "uwv.nl",
    "svb.nl",
    "duo.nl",
    "rdw.nl",
    "cbr.nl",
    "kvk.nl",
    "politie.nl",
    "amsterdam.nl",
    "rotterdam.nl",
    "denhaag.nl",
    "utrecht.nl",
    "eindhoven.nl",
    "groningen.nl",
    "tilburg.nl",
    "almere.nl",
    "breda.nl",
    "nijmegen.nl",
    "leiden.nl",
    "delft.nl",
    "haarlem.nl",
)


@dataclass(frozen=True)
class ReportConfig:
    """``copss report`` and ``stats``: which sites count as official sources."""

    official_domains: tuple[str, ...] = DEFAULT_OFFICIAL_DOMAINS


#: What a process can serve: ``copss run --role`` and ``[run] role`` name these.
ROLES = ("telegram", "discord", "console")


@dataclass(frozen=True)
class RunConfig:
    """``copss run``: what this process serves."""

    #: The platforms this process runs (adapters, with their inbox events and outbox):
    #: ``telegram``, ``discord``, ``console``; empty: every configured one.
    role: tuple[str, ...] = ()


@dataclass(frozen=True)
class Config:
    """Everything copss reads at start-up."""

    storage: StorageConfig = field(default_factory=StorageConfig)
    matching: MatchingConfig = field(default_factory=MatchingConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    discord: DiscordConfig = field(default_factory=DiscordConfig)
    telegram: TelegramConfig = field(default_factory=TelegramConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    run: RunConfig = field(default_factory=RunConfig)
    #: Extra admins, as ``platform:user_id`` (e.g. ``telegram:12345``).
    admins: tuple[str, ...] = ()
    log_level: str = "INFO"
    source: str = "built-in defaults"

    def serves(self, platform: str) -> bool:
        """Whether this process runs ``platform`` (its role names it, or it has none)."""
        return not self.run.role or platform in self.run.role

    @property
    def console_enabled(self) -> bool:
        """Console runs when asked (by the role, else ``console.enabled``), or when no
        platform is configured."""
        if self.run.role:
            return "console" in self.run.role
        if self.console.enabled is not None:
            return self.console.enabled
        return self.discord.token is None and self.telegram.token is None


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _type_name(tp: Any) -> str:
    if get_origin(tp) in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(tp) if a is not type(None))
    if get_origin(tp) is tuple:
        return "list of whole numbers" if get_args(tp)[0] is int else "list of strings"
    return {str: "string", int: "integer", float: "number", bool: "true/false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def _convert(value: Any, tp: Any, key: str, where: str) -> Any:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        for arg in get_args(tp):
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: '{key}' must be {_type_name(tp)}, not {value!r}")
    if origin is tuple:
        item = get_args(tp)[0]
        if not isinstance(value, list) or not all(
            isinstance(v, item) and not isinstance(v, bool) for v in value
        ):
            raise ConfigError(f"{where}: '{key}' must be a {_type_name(tp)}")
        return tuple(value)
    if tp is Secret:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: '{key}' must be a string")
        return Secret(value) if value else None
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is bool and isinstance(value, bool):
        return value
    if tp in (int, float, str) and isinstance(value, tp) and not isinstance(value, bool):
        return value
    raise ConfigError(f"{where}: '{key}' must be {_type_name(tp)}, not {value!r}")


def _build(cls: type[Any], data: Mapping[str, Any], prefix: str, where: str) -> Any:
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.name != "source"}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in names:
            known = ", ".join(sorted(names))
            raise ConfigError(f"{where}: unknown key '{full}' (known here: {known})")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: '{full}' must be a table ([{full}])")
            kwargs[key] = _build(tp, value, f"{full}.", where)  # type: ignore[arg-type]
        else:
            kwargs[key] = _convert(value, tp, full, where)
    return cls(**kwargs)


def _validate(config: Config, where: str) -> None:
    m = config.matching
    for key in ("answer_at", "suggest_at"):
        value = getattr(m, key)
        if value is not None and not 0.0 <= value <= 1.0:
            raise ConfigError(f"{where}: 'matching.{key}' must be between 0 and 1")
    if m.suggest_at is not None and m.answer_at is not None and m.suggest_at > m.answer_at:
        raise ConfigError(f"{where}: 'matching.suggest_at' must not exceed 'matching.answer_at'")
    if config.log_level.upper() not in _LOG_LEVELS:
        raise ConfigError(f"{where}: 'log_level' must be one of {', '.join(_LOG_LEVELS)}")
    tg = config.telegram
    if tg.mode not in ("polling", "webhook"):
        raise ConfigError(f"{where}: 'telegram.mode' must be 'polling' or 'webhook'")
    if tg.mode == "webhook" and not tg.webhook_url.startswith("https://"):
        raise ConfigError(
            f"{where}: 'telegram.webhook_url' must be the public https:// address Telegram calls "
            "in webhook mode"
        )
    if tg.webhook_secret is not None and not re.fullmatch(
        r"[A-Za-z0-9_-]{1,256}", tg.webhook_secret.reveal()
    ):
        raise ConfigError(
            f"{where}: 'telegram.webhook_secret' must be 1-256 characters of A-Z, a-z, 0-9, "
            "_ and - (or leave it out: copss then makes one at start)"
        )
    _validate_run(config, where)
    for domain in config.report.official_domains:
        if not re.fullmatch(r"(?:[a-z0-9-]+\.)+[a-z]{2,}", domain):
            raise ConfigError(
                f"{where}: 'report.official_domains' entries are lower-case domains like "
                f"'rijksoverheid.nl', not {domain!r}"
            )
    for admin in config.admins:
        platform, _, user = admin.partition(":")
        if platform not in ("console", "discord", "telegram") or not user:
            raise ConfigError(
                f"{where}: 'admins' entries look like 'telegram:12345', not {admin!r}"
            )


def _validate_run(config: Config, where: str) -> None:
    for role in config.run.role:
        if role not in ROLES:
            raise ConfigError(f"{where}: 'run.role' entries are {', '.join(ROLES)}, not {role!r}")
    tokens = {"telegram": config.telegram.token, "discord": config.discord.token}
    for platform, token in tokens.items():
        if platform in config.run.role and token is None:
            raise ConfigError(
                f"{where}: the role names {platform} but no {platform.capitalize()} token is "
                f"configured (COPSS_{platform.upper()}_TOKEN or [{platform}] token)"
            )
    dc = config.discord
    if dc.shard_count < 0:
        raise ConfigError(f"{where}: 'discord.shard_count' must be 0 (no sharding) or more")
    if dc.shard_ids and not dc.shard_count:
        raise ConfigError(
            f"{where}: 'discord.shard_ids' needs 'discord.shard_count', the bot's shards in all"
        )
    for shard in dc.shard_ids:
        if not 0 <= shard < dc.shard_count:
            raise ConfigError(
                f"{where}: 'discord.shard_ids' are from 0 to shard_count - 1 "
                f"({dc.shard_count - 1}), not {shard}"
            )
    if len(set(dc.shard_ids)) != len(dc.shard_ids):
        raise ConfigError(f"{where}: 'discord.shard_ids' names a shard twice")


def with_role(config: Config, role: str) -> Config:
    """``config`` serving only the platforms in ``role``, a comma-separated list as
    ``copss run --role`` takes it (``telegram,discord``)."""
    roles = tuple(dict.fromkeys(r.strip().lower() for r in role.split(",") if r.strip()))
    if not roles:
        raise ConfigError(f"--role: name one or more of {', '.join(ROLES)}")
    config = dataclasses.replace(config, run=RunConfig(role=roles))
    _validate_run(config, "--role")
    return config


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Read ``path`` (or only defaults when None) and apply environment overrides."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    where = "built-in defaults"
    if path is not None:
        where = str(path)
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError as exc:
            raise ConfigError(f"{where}: config file not found") from exc
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read config file: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{where}: not valid TOML: {exc}") from exc
    config: Config = _build(Config, data, "", where)
    overrides: dict[str, Any] = {}
    if env.get("COPSS_DISCORD_TOKEN"):
        overrides["discord"] = dataclasses.replace(
            config.discord, token=Secret(env["COPSS_DISCORD_TOKEN"])
        )
    if env.get("COPSS_TELEGRAM_TOKEN"):
        overrides["telegram"] = dataclasses.replace(
            config.telegram, token=Secret(env["COPSS_TELEGRAM_TOKEN"])
        )
    if env.get("COPSS_DATABASE_URL"):
        overrides["storage"] = StorageConfig(url=env["COPSS_DATABASE_URL"])
    config = dataclasses.replace(config, source=where, **overrides)
    _validate(config, where)
    return config
