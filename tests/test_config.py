"""Configuration loading and its error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, Secret, load_config
from bot.logs import RedactingFilter, redact, register_secret


def test_defaults_run_console_only() -> None:
    config = load_config(None, env={})
    assert config.console_enabled
    assert config.storage.url.startswith("sqlite+aiosqlite:///")
    assert config.storage.url.endswith("copss.db")


def test_file_and_env_tokens(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "admins = ['telegram:1']\n[matching]\nanswer_at = 0.8\nsuggest_at = 0.5\n"
        "[discord]\ntoken = 'from-file'\n"
    )
    config = load_config(cfg, env={"COPSS_TELEGRAM_TOKEN": "123456:" + "x" * 35})
    assert config.matching.answer_at == 0.8
    assert config.discord.token == Secret("from-file")
    assert config.telegram.token is not None
    assert not config.console_enabled
    assert "x" * 35 not in repr(config)
    assert config.admins == ("telegram:1",)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[matching]\nanswer_at = 2.0\n", "'matching.answer_at' must be between 0 and 1"),
        ("[matching]\nanswer_at = 0.3\nsuggest_at = 0.5\n", "must not exceed"),
        ("[telegram]\nport = 'x'\n", "'telegram.port' must be integer"),
        ("matching = 3\n", "'matching' must be a table"),
        ("[console]\nenabled = 'yes'\n", "'console.enabled' must be true/false"),
        ("log_level = 'LOUD'\n", "'log_level' must be one of"),
    ],
)
def test_errors_name_key_and_file(tmp_path: Path, content: str, message: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(content)
    with pytest.raises(ConfigError) as err:
        load_config(cfg, env={})
    assert message in str(err.value)
    assert str(cfg) in str(err.value)


def test_tokens_are_redacted_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    register_secret("s3cr3t-value-for-test")
    tg = "123456789:AAHfakefakefakefakefakefakefakefake12"
    assert "s3cr3t" not in redact("url https://x/bots3cr3t-value-for-test/getMe")
    assert tg not in redact(f"POST https://api.telegram.org/bot{tg}/getUpdates")
    record = logging.LogRecord("httpx", logging.INFO, "", 0, "GET /bot%s/x", (tg,), None)
    RedactingFilter().filter(record)
    assert tg not in record.getMessage()


def test_tracebacks_and_exception_text_are_redacted() -> None:
    """A token or webhook secret inside an exception's text or its traceback is masked too."""
    import io
    import logging

    from bot.logs import setup_logging

    secret = "whsec-Zq81-never-in-logs"
    register_secret(secret)
    tg = "123456789:AAHfakefakefakefakefakefakefakefake12"
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    setup_logging("INFO", stream=stream)
    log = logging.getLogger("copss.test")

    def fails(url: str) -> None:
        raise ConnectionError(f"cannot reach {url} (secret {secret})")

    try:
        fails(f"https://api.telegram.org/bot{tg}/getUpdates")
    except ConnectionError:
        log.exception("telegram: request failed")
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    out = stream.getvalue()
    assert "Traceback" in out and "ConnectionError" in out
    assert tg not in out and secret not in out
    assert "********" in out


def test_config_example_names_every_setting() -> None:
    """config.example.toml loads as it is and mentions every key copss reads."""
    import dataclasses
    import re
    from pathlib import Path

    from bot.config import Config, load_config

    example = Path(__file__).parents[1] / "config.example.toml"
    load_config(example, env={})
    text = example.read_text(encoding="utf-8")
    for section in dataclasses.fields(Config):
        if section.name == "source":  # where the config came from, not a setting
            continue
        sub = getattr(Config(), section.name)
        if not dataclasses.is_dataclass(sub):
            assert re.search(rf"^#? ?{section.name} =", text, re.M), section.name
            continue
        assert f"[{section.name}]" in text, section.name
        for key in dataclasses.fields(sub):
            assert re.search(rf"^#? ?{key.name} =", text, re.M), f"{section.name}.{key.name}"
