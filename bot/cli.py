"""The ``copss`` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, time
from pathlib import Path

from bot import __version__
from bot.config import Config, ConfigError, load_config, with_role
from bot.importing.records import FirstPass, ImportFileError
from bot.logs import setup_logging
from bot.store_setup import prepare_store
from faq.kb import KnowledgeBaseError, read_file, store_entries
from storage.engine import StorageError
from storage.migrations import LATEST, upgrade
from storage.models import Community
from storage.repos.faq import FaqRepo

EXIT_USAGE = 2

log = logging.getLogger("copss")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="copss",
        description="copss: one memory for Discord and Telegram public-service communities.",
    )
    p.add_argument("--version", action="version", version=f"copss {__version__}")
    _global_options(p, default=None)
    # The same options after the subcommand ("copss run --config x.toml"); SUPPRESS keeps a
    # value given before the subcommand when none is given after it.
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, default=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        parents=[common],
        help="run the bot (console when no platform token is configured)",
    )
    run.add_argument(
        "--role",
        metavar="PLATFORMS",
        help="serve only these platforms, comma-separated: telegram, discord, console "
        "(default: the config's [run] role, else every configured platform)",
    )
    ask = sub.add_parser(
        "ask", parents=[common], help="show the best matches for a question, with scores"
    )
    ask.add_argument("text", nargs="+", help="the question")
    ask.add_argument("--json", action="store_true", help="print JSON")
    ask.add_argument("--limit", type=_positive, default=5, help="how many matches (default 5)")
    db = sub.add_parser("db", parents=[common], help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="DB_COMMAND")
    db_sub.add_parser("upgrade", parents=[common], help="apply schema migrations")
    kb = sub.add_parser("kb", parents=[common], help="knowledge base")
    kb_sub = kb.add_subparsers(dest="kb_command", required=True, metavar="KB_COMMAND")
    load = kb_sub.add_parser(
        "load", parents=[common], help="create or update entries from a JSON file"
    )
    load.add_argument("file", type=Path)
    imp = sub.add_parser(
        "import", parents=[common], help="import a chat history (Telegram or Discord JSON export)"
    )
    imp.add_argument(
        "platform",
        choices=("telegram", "discord"),
        help="telegram: Telegram Desktop result.json; discord: DiscordChatExporter JSON",
    )
    imp.add_argument("file", type=Path)
    imp.add_argument("--quiet", action="store_true", help="no progress bar")
    report = sub.add_parser(
        "report",
        parents=[common],
        help="write the community health report (report.html and report.json)",
    )
    report.add_argument(
        "--out", type=Path, default=Path("copss-report"), help="folder (default ./copss-report)"
    )
    report.add_argument("--community", type=int, help="one community's id (default: every one)")
    report.add_argument("--since", type=_day, help="only from this day on (YYYY-MM-DD, UTC)")
    return p


def _global_options(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=default,
        help="TOML config file (default: ./config.toml if present)",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        type=str.lower,
        default=default,
        help="how much to log (default: the config's log_level, else info)",
    )


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if not 1 <= number <= 100:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 100, not {value!r}")
    return number


def _day(value: str) -> datetime:
    try:
        return datetime.combine(date.fromisoformat(value), time(), UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a day as YYYY-MM-DD, not {value!r}") from None


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _config(path: Path | None) -> Config:
    if path is None:
        default = Path("config.toml")
        path = default if default.exists() else None
    return load_config(path)


async def _ask(config: Config, text: str, as_json: bool, limit: int) -> int:
    # Imported here: the other commands start without the matcher and the model runtime.
    from bot.features.answers import find_answer, render
    from bot.semantic_setup import gate_of, start_semantic
    from faq.matcher import LexicalMatcher

    db = await prepare_store(config)
    try:
        semantic = await start_semantic(config, db)
        gate = gate_of(config, semantic is not None)
        matcher: LexicalMatcher = LexicalMatcher()
        if semantic is not None:
            # Whatever is not embedded yet (a store the bot has not run on) is, first.
            await semantic.load(db)
            await semantic.backfill(db).run()
            matcher = semantic.matcher()
        async with db.session() as session:
            # What the bot would do with this question in a chat (the config's levels); the
            # matches it decided on (those of the asking part, when only that found some).
            found = await find_answer(
                session, matcher, gate, text, community_id=None, limit=max(limit, 2)
            )
            decision = found.decision
            matches = found.matches[:limit]
            rows = []
            for m in matches:
                r = await render(session, m)
                if r is not None:
                    rows.append(
                        {
                            "kind": m.kind,
                            "id": m.ref_id,
                            "score": m.score,
                            "title": r.title,
                            "source": r.link,
                            "why": m.why,
                        }
                    )
    finally:
        await db.close()
    verdict = {"mode": decision.mode, "reason": decision.reason}
    if as_json:
        print(
            json.dumps(
                {"query": text, "decision": verdict, "matches": rows}, ensure_ascii=False, indent=2
            )
        )
        return 0
    if not rows:
        print("no match")
    for row in rows:
        print(f"{row['score']:.3f}  [{row['kind']} {row['id']}] {row['title']}")
        if row["source"]:
            print(f"       {row['source']}")
        # The score's parts (cosine, lexical similarities, signals): what the gate read.
        print(f"       {row['why']}")
    doing = {"answer": "answer with the first", "suggest": "suggest", "quiet": "stay quiet"}
    print(f"copss would {doing[decision.mode]}: {decision.reason}.")
    return 0


async def _db_upgrade(config: Config) -> int:
    from storage.engine import Database

    db = Database(config.storage.url)
    try:
        applied = await upgrade(db)
    finally:
        await db.close()
    if applied:
        print(f"applied migrations {', '.join(map(str, applied))}; schema at version {LATEST}")
    else:
        print(f"schema already at version {LATEST}")
    return 0


async def _kb_load(config: Config, file: Path) -> int:
    entries = read_file(file)
    db = await prepare_store(config, writable=True)
    try:
        async with db.session() as session:
            created, updated = await store_entries(FaqRepo(session), entries)
    finally:
        await db.close()
    print(f"{file}: {_count(created, 'entry', 'entries')} created, {updated} updated")
    return 0


async def _report(config: Config, out: Path, community: int | None, since: datetime | None) -> int:
    from bot.report.output import build_report, write_report

    db = await prepare_store(config)
    try:
        if community is not None:
            async with db.session() as session:
                if await session.get(Community, community) is None:
                    print(f"copss: there is no community {community}", file=sys.stderr)
                    return EXIT_USAGE
        report = await build_report(db, config.report.official_domains, community, since)
    finally:
        await db.close()
    try:
        json_path, html_path = write_report(report, out)
    except OSError as exc:
        print(f"copss: cannot write the report into {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{html_path}\n{json_path}")
    for health in report.communities:
        f = health.figures["all"]
        print(
            f"community {health.community_id} ({health.name}): {f.questions} questions, "
            f"{f.answered} answered, {len(health.backlog)} waiting, "
            f"{f.members_active} members active"
        )
    return 0


def _check_export(platform: str, file: Path) -> FirstPass:
    # A file that cannot be read whole stops here, before the store is opened.
    from bot.importing.run import first_pass

    if not file.is_file():
        raise ImportFileError(str(file), "no such file", offset=None, messages=0)
    return first_pass(platform, file)


async def _import(
    config: Config, platform: str, file: Path, checked: FirstPass, quiet: bool
) -> int:
    from bot.importing.run import import_file

    db = await prepare_store(config, writable=True)
    try:
        stats = await import_file(db, platform, file, progress=not quiet, checked=checked)
    finally:
        await db.close()
    print(
        f"{file}: {stats.read} messages read, {stats.messages} new; "
        f"{_count(stats.questions, 'question', 'questions')}, "
        f"{_count(stats.answers, 'answer', 'answers')}, {stats.solved} solved added"
        + (f"; {stats.skipped} of members who opted out left out" if stats.skipped else "")
    )
    return 0


def _serve(config: Config) -> int:
    # Imported here, as the adapters are: only running copss can meet an AdapterError.
    from adapters.base import AdapterError

    try:
        return asyncio.run(_run(config))
    except AdapterError as exc:
        print(f"copss: {exc}", file=sys.stderr)
        return 1


async def _run(config: Config) -> int:
    from bot.app import App  # the adapters and the hub: only for running copss

    async with App(config) as app:
        await app.run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``copss`` command."""
    args = _parser().parse_args(argv)
    try:
        config = _config(args.config)
        setup_logging(args.log_level or config.log_level)
        if args.command == "run":
            if args.role is not None:
                config = with_role(config, args.role)
            return _serve(config)
        if args.command == "ask":
            return asyncio.run(_ask(config, " ".join(args.text), args.json, args.limit))
        if args.command == "db":
            return asyncio.run(_db_upgrade(config))
        if args.command == "kb":
            return asyncio.run(_kb_load(config, args.file))
        if args.command == "import":
            from bot.importing.gcpolicy import collector_paused

            # Paused from the first pass on, as during the import itself (see gcpolicy): the
            # messages the pass keeps are not rescanned while the store is opened.
            with collector_paused():
                checked = _check_export(args.platform, args.file)
                return asyncio.run(_import(config, args.platform, args.file, checked, args.quiet))
        if args.command == "report":
            return asyncio.run(_report(config, args.out, args.community, args.since))
    except (ConfigError, StorageError, KnowledgeBaseError) as exc:
        print(f"copss: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ImportFileError as exc:
        print(f"copss: {exc}; nothing was imported", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
