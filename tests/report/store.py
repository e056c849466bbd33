"""A store with known, varied community history, written through copss's own repositories."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from faq.normalize import search_text
from storage.engine import Database
from storage.models import FaqEntry, Member, Message
from storage.repos.communities import merge_into
from storage.repos.conversation import ConversationRepo
from storage.repos.threads import ThreadRepo

NOW = datetime(2025, 3, 20, 12, 0, tzinfo=UTC)
#: A Telegram supergroup (links as t.me/c/1234/...), a topic of it, and a Discord channel.
TG_CHAT = "-1001234"
DC_CHAT = "555"
DC_GUILD = "999"
OTHER_CHAT = "-1009999"

QUESTIONS = [
    "How do I get a BSN number when I arrive?",
    "Which zorgverzekering is cheapest for students?",
    "Where do I register at the gemeente in Leiden?",
    "When is the tax return deadline this year?",
    "Can I exchange my driving license for a Dutch one?",
    "How long does the residence permit renewal take?",
    "Is there a good board game cafe in Delft?",
]
ANSWERS = [
    "Book an appointment, see https://www.amsterdam.nl/en/civil-affairs/ for the steps.",
    "The rules are on https://www.belastingdienst.nl/wps/wcm/connect/en/ — check there.",
    "Look at ind.nl, they list the processing times.",
    "A friend did it last month, took two weeks.",
    "https://www.example.org/blog/moving-to-nl has a good overview.",
    "Not sure, try find.nl or ask at the desk.",
    "Yes, via the RDW: https://rdw.nl/exchange",
]


@dataclass
class Built:
    """Ids of what was built."""

    a: int
    b: int
    tg_bot: int
    dc_bot: int


async def build(db: Database, seed: int = 7, with_b: bool = True) -> Built:
    """Community A (a Telegram supergroup with a topic, and a Discord channel, merged) and,
    unless ``with_b`` is false, community B (another Telegram group that shares a member)."""
    rng = random.Random(seed)
    async with db.session() as s:
        conv, threads = ConversationRepo(s), ThreadRepo(s)
        tg = await conv.ensure_channel("telegram", TG_CHAT, None, "Expats NL")
        topic = await conv.ensure_channel("telegram", TG_CHAT, "7", None)
        dc = await conv.ensure_channel("discord", DC_CHAT, None, f"guild:{DC_GUILD}")
        await s.run_sync(lambda ss: merge_into(ss.connection(), tg.community_id, dc.community_id))
        await s.refresh(dc)
        tg_people = [await conv.ensure_member("telegram", f"t{i}", f"tg{i}") for i in range(12)]
        dc_people = [await conv.ensure_member("discord", f"d{i}", f"dc{i}") for i in range(6)]
        tg_bot = await conv.ensure_member("telegram", "copss", "copss", is_bot=True)
        dc_bot = await conv.ensure_member("discord", "helper", "HelperBot", is_bot=True)
        s.add(FaqEntry(slug="board-games", question="Board games?", answer="x", tags=["games"]))
        s.add(
            FaqEntry(
                community_id=tg.community_id,
                slug="license",
                question="License?",
                answer="x",
                tags=["driving-licence", "rdw"],
            )
        )
        places = [(tg, tg_people, tg_bot), (topic, tg_people, tg_bot), (dc, dc_people, dc_bot)]
        counter = 0

        async def post(channel_i: int, who: Member, when: datetime, text: str) -> Message:
            nonlocal counter
            counter += 1
            channel = places[channel_i][0]
            msg, _ = await conv.add_message(channel, str(counter), who, text, when)
            return msg

        def someone(i: int) -> Member:
            _, people, bot = places[i]
            return bot if rng.random() < 0.12 else rng.choice(people)

        start = NOW - timedelta(days=33)
        for _ in range(260):
            i = rng.randrange(3)
            when = start + timedelta(seconds=rng.randrange(33 * 86400))
            who = someone(i)
            if rng.random() < 0.4:
                text = rng.choice(QUESTIONS)
                q = await post(i, who, when, text)
                thread = await threads.create(tg.community_id, q, text, search_text([text]), when)
                for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
                    j = rng.randrange(3)  # answers come from either platform (a bridge)
                    at = when + timedelta(minutes=rng.randrange(1, 72 * 60))
                    if at > NOW:
                        continue
                    answerer = someone(j)
                    a = await post(j, answerer, at, rng.choice(ANSWERS))
                    await threads.add_answer(thread, a)
                    if rng.random() < 0.1:
                        a.deleted = True
                roll = rng.random()
                if roll < 0.2:
                    await threads.mark_solved(thread)
                elif roll < 0.25:
                    await threads.mark_deleted(thread)
            else:
                msg = await post(i, who, when, "chat chat")
                roll = rng.random()
                if roll < 0.05:
                    msg.deleted = True
                elif roll < 0.1:
                    msg.origin = "copy:elsewhere"
        # Drive-by members: one message, or two within the hour (they did not come back).
        for k in range(5):
            once = await conv.ensure_member("telegram", f"once{k}", f"once{k}")
            when = NOW - timedelta(days=3 * k + 1, hours=k)
            await post(k % 2, once, when, "hello, just joined")
            if k == 4:
                await post(0, once, when + timedelta(minutes=40), "bye")
        # Someone seen only through copies relayed from another chat: not a member here.
        relayed = await conv.ensure_member("telegram", "relayed", "relayed")
        for k in range(2):
            copy = await post(0, relayed, NOW - timedelta(days=k + 1), "relayed words")
            copy.origin = f"discord:777:{k}"
        # Out of the period: a message after "now" counts nowhere.
        await post(0, tg_people[0], NOW + timedelta(days=2), "from the future")
        b_id = 0
        if with_b:
            other = await conv.ensure_channel("telegram", OTHER_CHAT, None, "Other")
            b_id = other.community_id
            # t0 is in both communities: B's messages must not make them less new in A.
            b_people = [
                tg_people[0],
                *[await conv.ensure_member("telegram", f"b{i}", "b") for i in range(4)],
            ]
            for k in range(80):
                when = NOW - timedelta(days=60) + timedelta(hours=13 * k)
                who = rng.choice(b_people)
                counter += 1
                m, _ = await conv.add_message(other, str(counter), who, QUESTIONS[k % 7], when)
                if k % 3 == 0:
                    th = await threads.create(b_id, m, m.text, search_text([m.text]), when)
                    counter += 1
                    ans, _ = await conv.add_message(
                        other,
                        str(counter),
                        rng.choice(b_people),
                        ANSWERS[k % 7],
                        when + timedelta(hours=1),
                    )
                    await threads.add_answer(th, ans)
        return Built(tg.community_id, b_id, tg_bot.id, dc_bot.id)
