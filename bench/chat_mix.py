"""The group-chat traffic of bench/throughput.py: questions, replies and chatter over many chats.

A :class:`ChatMix` plans messages one at a time, each with its kind and, for a reply, the earlier
planned message it answers, so that the caller can turn them into Telegram updates in order:

* questions (30%): a starter knowledge-base question or one of its aliases, lightly reworded
  (copss answers these from the FAQ); a question of the chat's own (which shop, which doctor,
  ...: a new thread); or, once such a question has been answered in the chat, the same question
  asked again in other words by another member (copss points to the earlier thread);
* replies (40%): another member answering one of the chat's recent questions, a reply to
  chatter, or the asker thanking whoever answered their question (which marks it solved);
* chatter (30%): statements that ask nothing.

Commands (``/help``, ``/stats``) are planned only on request (:meth:`ChatMix.command`). The
plan depends only on the seed, so every run offers the same traffic.
"""

from __future__ import annotations

import json
import random
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Kind = Literal["question", "reply", "chatter", "command"]
KINDS: tuple[Kind, ...] = ("question", "reply", "chatter")
#: Shares of the mix, in the order of :data:`KINDS`.
WEIGHTS = (30, 40, 30)
#: Members per chat.
MEMBERS = 20
#: Telegram ids of the benchmark's supergroups are this minus the chat's index.
CHAT_BASE = -1001000000000
#: User ids of chat members are this plus ``chat index * 100 + member index``.
USER_BASE = 100_000
#: User ids of members who only send commands are this plus a running number.
COMMAND_USER_BASE = 900_000

STARTER_KB = Path(__file__).resolve().parents[1] / "faq" / "data" / "starter_kb.json"

NAMES = (
    "Anna", "Bram", "Chen", "Daan", "Eva", "Farah", "Gijs", "Hana", "Ivo", "Jasmijn",
    "Karim", "Lotte", "Mehmet", "Noor", "Oscar", "Priya", "Quinten", "Rosa", "Sven", "Tess",
)  # fmt: skip
PLACES = (
    "Utrecht Centraal", "Amsterdam Zuid", "Rotterdam Blaak", "Den Haag HS", "Leiden Centraal",
    "Eindhoven Strijp", "Groningen Zernike", "Delft Station", "Haarlem Centrum", "Nijmegen Lent",
    "Arnhem Presikhaaf", "Tilburg Reeshof", "Breda Ginneken", "Zwolle Assendorp", "Almere Haven",
)  # fmt: skip
ITEMS = (
    "oat milk", "rye bread", "spicy paneer", "gluten free pasta", "fresh tortillas",
    "halloumi", "kimchi", "second hand bikes", "winter tyres", "Korean snacks",
    "cheap phone cases", "good coffee beans", "Turkish bread", "vegan cheese", "sourdough",
    "Polish sausages", "Indian spices", "Brazilian beans", "fresh tofu", "rice cookers",
)  # fmt: skip
SHOPS = ("shop", "market", "supermarket", "store", "bakery", "corner shop")
SERVICES = (
    "dentist", "physiotherapist", "bike repair shop", "hairdresser", "notary",
    "tax adviser", "plumber", "driving school", "piano teacher", "vet",
)  # fmt: skip
ADJECTIVES = ("grey", "sunny", "windy", "rainy", "lovely", "cold", "mild", "stormy")

NEW_QUESTIONS = (
    "Which {shop} near {place} sells {item} at a fair price?",
    "Where near {place} can I buy {item} on a Sunday?",
    "Can anyone recommend a {service} around {place} who speaks English?",
    "Which {service} near {place} takes new clients this month?",
    "Is there a {shop} at {place} that has {item} in stock?",
    "Where do people around {place} get {item} for a party?",
)
#: How a member asks a question of the chat again, in other words.
ASKED_AGAIN = (
    "Does anyone know {q}",
    "Sorry if this was asked before: {q}",
    "Quick one, {q}",
    "Hi all, {q}",
)
KB_PREFIXES = ("", "Hi all, ", "Quick question: ", "Hello! ", "Does anyone here know ", "Hey, ")
ANSWERS = (
    "The {shop} next to {place} has {item}, about {n} euro last week.",
    "I always go to the {shop} at {place}, they keep {item} near the entrance.",
    "Try the {service} on the main street by {place}, they helped me within a week.",
    "My neighbour uses a {service} close to {place} and is happy with them.",
    "Albert Heijn at {place} had {item} yesterday, {n} euro for a pack.",
)
CHATTER = (
    "Just got back from {place}, the weather was {adj} all afternoon.",
    "The trains to {place} are running late again this morning.",
    "Found {item} at the market today, made my week.",
    "Welcome to the group everyone, nice to see so many new faces here.",
    "Reminder that the meetup at {place} starts at {n} tonight.",
    "My {service} appointment went well in the end, good experience.",
    "Lovely {adj} day for cycling along the canals near {place}.",
    "I made soup with {item} today and it turned out great.",
    "Our building near {place} finally has working heating again.",
    "Good morning from {place}, coffee first and then the tax forms.",
)
CHATTER_REPLIES = (
    "Same here, {place} was busy too.",
    "Haha, that sounds familiar.",
    "Nice, enjoy the rest of your day.",
    "Good to hear it worked out for you.",
    "Totally agree with you on that one.",
)
THANKS = (
    "Thanks, that worked!",
    "Thank you so much, that helps a lot.",
    "Thanks a lot, found it there.",
    "Great, thanks for the tip!",
)


def starter_questions(path: Path = STARTER_KB) -> list[str]:
    """The questions and aliases of the starter knowledge base, each as a question."""
    entries = json.loads(path.read_text(encoding="utf-8"))["entries"]
    questions: list[str] = []
    for entry in entries:
        for text in [entry["question"], *entry.get("aliases", [])]:
            text = " ".join(str(text).split()).rstrip(" ?.!")
            if len(text.split()) >= 3:
                questions.append(text + "?")
    return questions


def _lower_first(text: str) -> str:
    # "How do I ..." after a prefix reads "... how do I ..."; a leading acronym stays.
    if len(text) > 1 and text[0].isupper() and not text[1].isupper():
        return text[0].lower() + text[1:]
    return text


@dataclass(frozen=True)
class Planned:
    """One planned message: ``chat`` is the chat's index, ``reply_to`` the index (in the plan)
    of the message it replies to; ``detail`` says which variety of its kind it is (``kb``,
    ``own``, ``again``, ``answer``, ``chatter``, ``thanks``, ``help``, ``stats``)."""

    kind: Kind
    detail: str
    chat: int
    user: int
    name: str
    text: str
    reply_to: int | None = None

    @property
    def chat_id(self) -> int:
        """The Telegram id of the chat."""
        return CHAT_BASE - self.chat


@dataclass
class _Chat:
    questions: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=20))
    chatter: deque[int] = field(default_factory=lambda: deque(maxlen=20))
    # Own questions someone answered: (plan index, text) for asking them again.
    answered: list[tuple[int, str]] = field(default_factory=list)
    # Answers to a question: (answer's plan index, asker's user id).
    answers: deque[tuple[int, int]] = field(default_factory=lambda: deque(maxlen=20))


class ChatMix:
    """Plans the benchmark's messages over ``chats`` chats (deterministic for a seed)."""

    def __init__(self, chats: int = 50, seed: int = 15) -> None:
        self.chats = chats
        self.rng = random.Random(seed)
        self.kb = starter_questions()
        self.plan: list[Planned] = []
        self._state = [_Chat() for _ in range(chats)]
        self._own: dict[int, str] = {}  # plan index of an own question -> its text
        self._command_users = 0

    def _member(self, chat: int, avoid: int | None = None) -> tuple[int, str]:
        while True:
            k = self.rng.randrange(MEMBERS)
            user = USER_BASE + chat * 100 + k
            if user != avoid:
                return user, NAMES[k]

    def _fill(self, template: str) -> str:
        r = self.rng
        return template.format(
            place=r.choice(PLACES),
            item=r.choice(ITEMS),
            shop=r.choice(SHOPS),
            service=r.choice(SERVICES),
            adj=r.choice(ADJECTIVES),
            n=r.randrange(2, 10),
        )

    def _add(self, planned: Planned) -> Planned:
        self.plan.append(planned)
        return planned

    def next(self, kind: Kind | None = None) -> Planned:
        """Plan the next message: of ``kind``, else drawn from the mix."""
        forced = kind is not None
        if kind is None:
            kind = self.rng.choices(KINDS, WEIGHTS)[0]
        chat = self.rng.randrange(self.chats)
        if kind == "reply":
            # A reply asked for goes to a chat that has something to reply to, if any does.
            for _ in range(3 * self.chats if forced else 1):
                planned = self._reply(chat)
                if planned is not None:
                    return planned
                chat = self.rng.randrange(self.chats)
            kind = "question"  # nothing to reply to yet in this chat
        if kind == "question":
            return self._question(chat)
        if kind == "command":
            return self.command("help")
        return self._chatter(chat)

    def _question(self, chat: int) -> Planned:
        state = self._state[chat]
        roll = self.rng.random()
        index = len(self.plan)
        if roll < 0.25 and state.answered:
            first, text = self.rng.choice(state.answered)
            asker = self.plan[first].user
            user, name = self._member(chat, avoid=asker)
            again = self.rng.choice(ASKED_AGAIN).format(q=_lower_first(text))
            planned = Planned("question", "again", chat, user, name, again)
        elif roll < 0.65:
            user, name = self._member(chat)
            text = self.rng.choice(self.kb)
            reworded = self.rng.choice(KB_PREFIXES) + text
            if reworded != text:
                reworded = reworded[: len(reworded) - len(text)] + _lower_first(text)
            planned = Planned("question", "kb", chat, user, name, reworded)
        else:
            user, name = self._member(chat)
            text = self._fill(self.rng.choice(NEW_QUESTIONS))
            planned = Planned("question", "own", chat, user, name, text)
            self._own[index] = text
        state.questions.append((index, planned.user))
        return self._add(planned)

    def _reply(self, chat: int) -> Planned | None:
        state = self._state[chat]
        index = len(self.plan)
        roll = self.rng.random()
        if roll < 0.15 and state.answers:
            answer, asker = self.rng.choice(state.answers)
            name = NAMES[(asker - USER_BASE) % 100]
            text = self.rng.choice(THANKS)
            return self._add(Planned("reply", "thanks", chat, asker, name, text, answer))
        if roll < 0.75 and state.questions:
            question, asker = self.rng.choice(state.questions)
            user, name = self._member(chat, avoid=asker)
            text = self._fill(self.rng.choice(ANSWERS))
            state.answers.append((index, asker))
            own = self._own.pop(question, None)
            if own is not None:  # answered now: it may be asked again
                state.answered.append((question, own))
            return self._add(Planned("reply", "answer", chat, user, name, text, question))
        if state.chatter:
            target = self.rng.choice(state.chatter)
            user, name = self._member(chat, avoid=self.plan[target].user)
            text = self._fill(self.rng.choice(CHATTER_REPLIES))
            return self._add(Planned("reply", "chatter", chat, user, name, text, target))
        return None

    def _chatter(self, chat: int) -> Planned:
        user, name = self._member(chat)
        text = self._fill(self.rng.choice(CHATTER))
        self._state[chat].chatter.append(len(self.plan))
        return self._add(Planned("chatter", "chatter", chat, user, name, text))

    def command(self, name: str) -> Planned:
        """Plan ``/name`` from a member who sent no command before (so no per-member limit or
        repeat suppression is reached), in a chat drawn at random."""
        chat = self.rng.randrange(self.chats)
        self._command_users += 1
        user = COMMAND_USER_BASE + self._command_users
        return self._add(Planned("command", name, chat, user, f"Admin {user}", f"/{name}"))

    def command_users(self, count: int) -> list[int]:
        """The user ids :meth:`command` gives to its next ``count`` messages."""
        first = COMMAND_USER_BASE + self._command_users + 1
        return list(range(first, first + count))
