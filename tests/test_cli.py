"""The ``copss`` command as a user runs it (subprocesses on real files)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def copss(
    tmp_path: Path, *args: str, stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COPSS_HOME": str(tmp_path / "home")}
    env.pop("COPSS_TELEGRAM_TOKEN", None)
    env.pop("COPSS_DISCORD_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=timeout,
        check=False,
    )


def test_version_and_help(tmp_path: Path) -> None:
    out = copss(tmp_path, "--version")
    assert out.returncode == 0 and out.stdout.startswith("copss ")
    out = copss(tmp_path, "--help")
    assert out.returncode == 0
    for word in ("run", "ask", "db", "kb"):
        assert word in out.stdout


def test_ask_json_lists_registration_first(tmp_path: Path) -> None:
    out = copss(tmp_path, "ask", "how do I register at the gemeente", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    first = data["matches"][0]
    assert first["kind"] == "faq"
    assert "regist" in first["title"].lower()
    assert first["score"] >= data["matches"][1]["score"]
    assert (tmp_path / "home" / "copss.db").exists()


def test_run_console_answers_bsn(tmp_path: Path) -> None:
    out = copss(tmp_path, "run", stdin="How do I get a BSN number?\n")
    assert out.returncode == 0, out.stderr
    assert "#1 you: How do I get a BSN number?" in out.stdout
    assert "#2 copss ↪#1:" in out.stdout
    assert "BSN" in out.stdout and "https://" in out.stdout


def test_db_upgrade_is_idempotent(tmp_path: Path) -> None:
    first = copss(tmp_path, "db", "upgrade")
    second = copss(tmp_path, "db", "upgrade")
    assert first.returncode == 0 and "applied migrations 1" in first.stdout
    assert second.returncode == 0 and "already at version" in second.stdout


def test_kb_load_and_malformed_file(tmp_path: Path) -> None:
    good = tmp_path / "kb.json"
    good.write_text(
        json.dumps(
            {
                "entries": [
                    {
                        "slug": "bike-theft",
                        "question": "What do I do when my bike is stolen?",
                        "aliases": ["fiets gestolen"],
                        "answer": "Report it to the police online.",
                        "source_url": "https://www.politie.nl/",
                        "reviewed_at": "2026-11-01",
                    }
                ]
            }
        )
    )
    out = copss(tmp_path, "kb", "load", str(good))
    assert out.returncode == 0, out.stderr
    assert "1 entry created" in out.stdout
    out = copss(tmp_path, "ask", "my fiets gestolen what now", "--json")
    assert json.loads(out.stdout)["matches"][0]["title"] == "What do I do when my bike is stolen?"

    bad = tmp_path / "bad.json"
    bad.write_text('{"entries": [{"slug": "xy", "question": "q?"}]}')
    out = copss(tmp_path, "kb", "load", str(bad))
    assert out.returncode == 2
    assert "bad.json: entry 1 (xy): 'answer' must be a non-empty string" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        # What chat's `faq add` refuses, `kb load` refuses too: one validator.
        ({"slug": "Bad Slug!"}, "slug 'Bad Slug!' must be 2-100 lowercase letters"),
        ({"slug": "x"}, "slug 'x' must be 2-100 lowercase letters"),
        ({"slug": "ok", "anwser": "typo"}, "unknown field(s) 'anwser'"),
        ({"slug": "ok", "source_url": "http://x.nl"}, "'source_url' must be an https:// link"),
        ({"slug": "ok", "source_url": "https://a b"}, "'source_url' must be an https:// link"),
        ({"slug": "ok", "answer": "a" * 3001}, "'answer' is longer than 3000"),
    ],
)
def test_kb_load_uses_the_chat_rules(tmp_path: Path, entry: dict[str, str], message: str) -> None:
    full = {"question": "How?", "answer": "Like this.", **entry}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"entries": [full]}))
    out = copss(tmp_path, "kb", "load", str(bad))
    assert out.returncode == 2
    assert message in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[matching]\nanswer_at = 'high'\n", "'matching.answer_at' must be number"),
        ("[storage]\nurll = 'x'\n", "unknown key 'storage.urll'"),
        ("this is not toml", "not valid TOML"),
        ("admins = ['alice']\n", "'admins' entries look like"),
    ],
)
def test_bad_config_exits_2_naming_key_and_file(tmp_path: Path, content: str, message: str) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(content)
    out = copss(tmp_path, "--config", str(cfg), "ask", "bsn")
    assert out.returncode == 2
    assert message in out.stderr and str(cfg) in out.stderr
    assert "Traceback" not in out.stderr


def test_missing_config_file_exits_2(tmp_path: Path) -> None:
    out = copss(tmp_path, "--config", str(tmp_path / "nope.toml"), "run")
    assert out.returncode == 2 and "config file not found" in out.stderr


def test_corrupt_database_exits_2(tmp_path: Path) -> None:
    dbfile = tmp_path / "broken.db"
    dbfile.write_bytes(b"this is not a sqlite database at all" * 200)
    before = dbfile.read_bytes()
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"[storage]\nurl = 'sqlite+aiosqlite:///{dbfile}'\n")
    out = copss(tmp_path, "--config", str(cfg), "run", stdin="hello\n")
    assert out.returncode == 2
    assert "cannot open database" in out.stderr and "broken.db" in out.stderr
    assert "Traceback" not in out.stderr
    assert dbfile.read_bytes() == before  # nothing overwritten


@pytest.mark.skipif(
    os.geteuid() == 0, reason="runs as root, and root can read a file with mode 000"
)
def test_unreadable_database_exits_2(tmp_path: Path) -> None:
    dbfile = tmp_path / "locked.db"
    dbfile.write_bytes(b"")
    dbfile.chmod(0)
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"[storage]\nurl = 'sqlite+aiosqlite:///{dbfile}'\n")
    out = copss(tmp_path, "--config", str(cfg), "ask", "bsn")
    assert out.returncode == 2 and "cannot open database" in out.stderr


def test_database_in_unwritable_place_exits_2(tmp_path: Path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"[storage]\nurl = 'sqlite+aiosqlite:///{blocker}/sub/copss.db'\n")
    out = copss(tmp_path, "--config", str(cfg), "ask", "bsn")
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr


def test_a_configured_store_whose_folder_is_gone_is_not_recreated(tmp_path: Path) -> None:
    # The store's folder was removed (a bad cleanup, an unmounted volume): copss refuses to
    # start on an empty store in its place, with one clear message; its own default data
    # folder is still made on a first run (test_ask_json_lists_registration_first).
    gone = tmp_path / "srv" / "copss"
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"[storage]\nurl = 'sqlite+aiosqlite:///{gone}/copss.db'\n")
    out = copss(tmp_path, "--config", str(cfg), "ask", "bsn")
    assert out.returncode == 2, out.stderr
    assert f"the folder of database {gone}/copss.db does not exist" in out.stderr
    assert "Traceback" not in out.stderr
    assert not gone.exists()


def test_refused_telegram_token_is_one_clear_error(tmp_path: Path) -> None:
    import asyncio
    import threading

    from tests.fakes.telegram_api import FakeTelegramAPI

    loop = asyncio.new_event_loop()
    api = FakeTelegramAPI(token="999:right-token-but-not-this-one")
    loop.run_until_complete(api.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        cfg = tmp_path / "config.toml"
        cfg.write_text(f"[telegram]\nbase_url = '{api.base_url}'\n")
        secret = "123456:ThisTokenIsWrongAndMustNotBeLogged123"
        env_out = subprocess.run(
            [sys.executable, "-m", "bot.cli", "--config", str(cfg), "run"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            check=False,
            env={**os.environ, "COPSS_HOME": str(tmp_path), "COPSS_TELEGRAM_TOKEN": secret},
        )
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
    assert env_out.returncode == 1
    assert "Telegram refused the bot token" in env_out.stderr
    assert "Traceback" not in env_out.stderr
    assert secret not in env_out.stderr + env_out.stdout


@pytest.mark.parametrize("where", ["before", "after"])
def test_config_option_before_or_after_the_subcommand(tmp_path: Path, where: str) -> None:
    cfg = tmp_path / "x.toml"
    cfg.write_text(f"[storage]\nurl = 'sqlite+aiosqlite:///{tmp_path / 'other.db'}'\n")
    args = ["--config", str(cfg), "db", "upgrade"]
    if where == "after":
        args = ["db", "upgrade", "--config", str(cfg)]
    out = copss(tmp_path, *args)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "other.db").exists()
    out = copss(tmp_path, "ask", "how do I get a BSN", "--config", str(cfg), "--limit", "2")
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("limit", ["-3", "0", "x", "101"])
def test_ask_limit_must_be_positive(tmp_path: Path, limit: str) -> None:
    out = copss(tmp_path, "ask", "bsn", "--limit", limit)
    assert out.returncode == 2
    assert "must be a whole number from 1 to 100" in out.stderr


def test_ask_says_what_the_bot_would_do_and_why(tmp_path: Path) -> None:
    out = copss(tmp_path, "ask", "How do I apply for DigiD?")
    assert out.returncode == 0, out.stderr
    assert "copss would answer with the first:" in out.stdout
    out = copss(tmp_path, "ask", "How do I apply for DigiD?", "--json")
    assert json.loads(out.stdout)["decision"]["mode"] == "answer"
    out = copss(tmp_path, "ask", "xyzzy plugh")
    assert "copss would stay quiet:" in out.stdout


def test_ask_matches_the_asking_sentence_when_the_greeting_hides_it(tmp_path: Path) -> None:
    # The whole message scores far below the suggest level; its question alone finds the
    # entry, and copss says that it matched only that part.
    text = (
        "Hi everyone, greetings from a rainy Groningen, my partner and I arrived from Brazil "
        "two weeks ago and the kids started school. How do I file my income tax return?"
    )
    out = copss(tmp_path, "ask", text, "--json")
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert found["decision"]["mode"] in ("answer", "suggest")
    assert "matching only: 'How do I file my income tax return?'" in found["decision"]["reason"]
    assert "income tax return" in found["matches"][0]["title"]
