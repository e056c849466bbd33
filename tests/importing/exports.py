"""Small synthetic exports written to the documented schemas (Telegram Desktop, DCE)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
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


#: Chat lines for :func:`mixed_history`: English and Dutch, questions with and without a
#: question mark, requests, statements full of auxiliaries, thanks, markup, links, mentions,
#: emoji, accents and curly apostrophes, commands.
QUESTIONS = [
    "How do I register my bicycle against theft in Amsterdam?",
    "Hi all, does anyone know how long it takes to get a BSN after the appointment",
    "where do I register my address in Amsterdam? the website only shows dutch",
    "Is the 30% ruling still 30% in 2025 or did they lower it?",
    "Can I open a bank account without a BSN",
    "Weet iemand hoe ik een parkeervergunning aanvraag in Utrecht?",
    "Hoe lang duurt het voordat je DigiD binnen is",
    "Any tips for finding a GP who takes new patients? Thanks in advance",
    "Looking for advice on renting in Den Haag, the landlord wants 3 months deposit",
    "I was wondering whether the gemeente accepts a rental contract as proof of address",
    "Kan ik mijn rijbewijs omwisselen bij de gemeente?",
    "Does the IND send the residence permit by post or do I pick it up",
    "Quick question: which health insurance covers physiotherapy 🙏",
    "**Anyone** know where to buy cheap oat milk near Utrecht Centraal?",
    "@helpdesk what’s the deadline for the tax return this year",
    "Is het normaal dat de huurtoeslag zo laat komt?",
    "Graag advies over een goede huisarts in Zwolle",
    "We need help with the toeslagen form, it keeps failing",
    "Zijn er mensen die ervaring hebben met de belastingdienst app?",
    "You have to register within 5 days, right",
    "Café near the station that accepts cash? Ik zoek er één.",
    "how do i get a bsn as a student, not sure where to start",
]
CHATTER = [
    "thanks, that worked!",
    "Thank you so much 🙏",
    "good morning all",
    "bedankt, gelukt!",
    "same here, the police bike depot website helped me",
    "The Lidl at Vredenburg sells oat milk for 1 euro.",
    "It is at the gemeente desk, bring your rental contract and your passport",
    "You can do it online at https://www.amsterdam.nl/parkeren/ in ten minutes",
    "Was a nice meetup yesterday, see you all next week",
    "Have a nice day everyone",
    "/help",
    "Dat kun je gewoon online doen via mijn.overheid.nl",
    "Het duurt meestal twee weken, bij mij was het sneller",
    "Bike registration against theft is done at the police depot.",
    "lol 😂😂",
    "Don’t forget the appointment letter",
    "Ik heb het ook gehad, het gaat vanzelf over",
    "The GP at Zorgkaart takes new patients, check the site",
    "ok",
    "Who cares, it is raining again",
    "Physiotherapy is covered by the aanvullende verzekering _only_",
    "Bij de gemeente: neem je huurcontract mee",
]


def mixed_history(n: int = 360, seed: int = 11) -> list[dict[str, Any]]:
    """A forum supergroup's history of ``n`` messages with most of what real exports hold:
    questions and chatter (:data:`QUESTIONS`, :data:`CHATTER`), replies near and far, thanks
    by the asker in reply and unthreaded, reactions named and counted, forum topics, edits,
    forwards, deleted accounts, numeric ``from_id``, missing ``date_unixtime``, ``Z`` dates,
    list texts, service messages and a message the file holds twice."""
    rnd = random.Random(seed)
    at = 1_700_000_000
    out: list[dict[str, Any]] = []
    topics: list[int] = []
    askers: dict[int, str] = {}
    for mid in range(1, n + 1):
        at += rnd.choice((5, 30, 90, 240, 700, 1500, 4000))
        user = rnd.randrange(1, 16)
        who_id: Any = f"user{user}" if user % 7 else user
        extra: dict[str, Any] = {}
        roll = rnd.random()
        if mid % 97 == 5:
            out.append(
                {
                    "id": mid,
                    "type": "service",
                    "date": "2023-11-15T01:00:00",
                    "actor": f"Member {user}",
                    "actor_id": f"user{user}",
                    "action": "topic_created",
                    "title": f"Topic {mid}",
                    "text": "",
                }
            )
            topics.append(mid)
            continue
        if roll < 0.3:
            text: Any = rnd.choice(QUESTIONS)
            askers[mid] = str(who_id)
        elif roll < 0.6 and out:
            back = rnd.choice((1, 1, 2, 3, 40, 200))
            target = max(1, mid - back)
            extra["reply_to_message_id"] = target
            if askers.get(target - 1) == str(who_id) or (target in askers and rnd.random() < 0.3):
                text = rnd.choice(["thanks, that worked!", "Thank you!", "Top, bedankt", "ok"])
                who_id = askers.get(target, who_id)
            else:
                text = rnd.choice(CHATTER)
        else:
            text = rnd.choice(CHATTER + QUESTIONS[:3])
        if topics and rnd.random() < 0.15:
            extra["reply_to_message_id"] = rnd.choice(topics)
        if rnd.random() < 0.1:
            text = [text if isinstance(text, str) else "", {"type": "link", "text": " see this"}]
        if rnd.random() < 0.12:
            users = [{"from_id": rnd.choice(list(askers.values()) or ["user1"])}]
            extra["reactions"] = [
                {
                    "type": "emoji",
                    "count": rnd.randrange(1, 4),
                    "emoji": rnd.choice(["✅", "👍", "✔️", "❤"]),
                    **({"recent": users} if rnd.random() < 0.6 else {}),
                }
            ]
        if rnd.random() < 0.05:
            extra["edited"] = "2023-11-20T10:00:00"
            extra["edited_unixtime"] = str(at + 60)
        if rnd.random() < 0.03:
            extra["forwarded_from"] = "Some channel"
        m = tg_message(mid, text, who=f"Member {user}", who_id=who_id, at=at, **extra)
        if rnd.random() < 0.04:
            m["from"] = None
        if rnd.random() < 0.05:
            del m["date_unixtime"]
            m["date"] = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S") + (
                "Z" if rnd.random() < 0.5 else ""
            )
        out.append(m)
        if mid % 61 == 0:
            out.append(dict(m))  # the file holds this message twice
    return out
