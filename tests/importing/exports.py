"""Small synthetic exports written to the documented schemas (Telegram Desktop, DCE)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Bare id of the exported supergroup; live copss (the Bot API) calls it ``-100`` + this.
SUPERGROUP = 1987654321


def tg_message(
    mid: int | str,
    text: Any,
    *,
    who: str | None = "Alice",
    who_id: Any = "user1",
    at: int = 1_700_000_000,
    **extra: Any,
) -> dict[str, Any]:
    """A Telegram Desktop message; ``at`` seconds since the epoch."""
    m: dict[str, Any] = {
        "id": mid,
        "type": "message",
        "date": "2023-11-14T22:13:20",
        "date_unixtime": str(at),
        "from": who,
        "from_id": who_id,
        "text": text,
    }
    m.update(extra)
    return m


def tg_chat(messages: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """A single-chat export."""
    chat = {"name": "Expats NL", "type": "private_supergroup", "id": SUPERGROUP}
    chat.update(fields)
    return {**chat, "messages": messages}


def write(path: Path, data: Any) -> Path:
    """Write ``data`` as Telegram/DCE do (indented UTF-8)."""
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def bike_history() -> list[dict[str, Any]]:
    """A chat where a question is answered by reply, then thanked; another answered in
    unthreaded chat and solved with the asker's ✅."""
    return [
        tg_message(1, "Hi all!", who="Bob", who_id="user2", at=1_700_000_000),
        tg_message(
            2,
            "Where can I buy cheap oat milk near Utrecht Centraal?",
            who="Carol",
            who_id="user3",
            at=1_700_000_060,
        ),
        tg_message(
            3,
            ["The ", {"type": "bold", "text": "Lidl"}, " at Vredenburg sells oat milk for 1 euro."],
            who="Bob",
            who_id="user2",
            at=1_700_000_120,
            reply_to_message_id=2,
        ),
        tg_message(
            4,
            "thanks, that worked!",
            who="Carol",
            who_id="user3",
            at=1_700_000_180,
            reply_to_message_id=3,
        ),
        tg_message(
            5,
            "How do I register my bicycle against theft in Amsterdam?",
            who="Dave",
            who_id=4,
            at=1_700_010_000,
        ),
        tg_message(
            6,
            "Bicycle registration against theft is done at the police bike depot website.",
            who="Erin",
            who_id="user5",
            at=1_700_010_100,
            reactions=[
                {
                    "type": "emoji",
                    "count": 1,
                    "emoji": "✅",
                    "recent": [{"from": "Dave", "from_id": "user4", "date": "2023-11-15"}],
                }
            ],
        ),
        {
            "id": 7,
            "type": "service",
            "date": "2023-11-15T01:00:00",
            "actor": "Bob",
            "actor_id": "user2",
            "action": "pin_message",
            "message_id": 3,
            "text": "",
        },
    ]
