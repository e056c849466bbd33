"""Nothing copss posts carries control, bidi or invisible characters: not a member's answer it
quotes, not a bridged member's words or name; on Telegram, on Discord (webhook names too)
and on the console's terminal. Letters, accents, emoji and line breaks pass unchanged."""

from __future__ import annotations

import asyncio
import io
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.console import ConsoleAdapter
from adapters.text import outgoing_name, outgoing_text, split_pieces
from tests.adapters.bridge_harness import (
    DC_ALICE,
    DC_BOB,
    DISCORD_TOKEN,
    GENERAL,
    GROUP,
    GUILD,
    TG_ANNA,
    TG_BEN,
    BridgeHarness,
    build_worlds,
)
from tests.adapters.tg_harness import TelegramHarness
from tests.fakes.discord_gateway import FakeDiscord
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegramAPI

#: Every character copss must never post (ESC and BEL of the terminal attacks among them).
FORBIDDEN = (
    [chr(c) for c in range(0x00, 0x20) if chr(c) not in "\n\t"]
    + [chr(c) for c in range(0x7F, 0xA0)]
    + list("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    + list("\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u180e\u00ad")
    + [chr(c) for c in range(0xE0000, 0xE0080)]
)
EVIL_NAME = "\x1b[2Jevil\x07"
EVIL_TEXT = "\x1b]0;pwn\x07hi"
#: Tries to reverse what follows and to split words invisibly.
SNEAKY_ANSWER = "Try \u202eBakkerij\u200b Vaneker\u2066 on the Grote\u200d Markt."
#: What must pass unchanged: Dutch accents, emoji with ZWJ sequences and skin tones, a
#: subdivision flag, Persian with its ZWNJ, newlines and a tab.
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
PLAIN = (
    f"Één café in ’s-Hertogenbosch, naïef geprobeerd {FAMILY} 🏳️\u200d🌈 👍🏽 "
    "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f\n"
    "tweede regel\tmet tab — می\u200cخواهم"
)


def assert_clean(text: str) -> None:
    found = sorted({f"U+{ord(c):04X}" for c in text if c in FORBIDDEN})
    assert not found, (found, text)


# -- the functions ---------------------------------------------------------------------------


def test_outgoing_text_removes_every_forbidden_character() -> None:
    everything = "a" + "".join(FORBIDDEN) + "b"
    assert outgoing_text(everything) == "a\nb"  # \r (in the C0 range) becomes a line break
    assert outgoing_text(EVIL_TEXT) == "]0;pwnhi"
    assert outgoing_text(SNEAKY_ANSWER) == "Try Bakkerij Vaneker on the Grote Markt."
    assert outgoing_text("a\r\nb\rc\u2028d") == "a\nb\nc\nd"


def test_outgoing_text_keeps_letters_accents_emoji_and_line_breaks() -> None:
    assert outgoing_text(PLAIN) == PLAIN
    # A joiner only where it joins: between emoji, or letters of a script that spells with it.
    assert outgoing_text("@every\u200done") == "@everyone"
    assert outgoing_text("\u200d" + FAMILY + "\u200d") == FAMILY
    assert outgoing_text("a\U000e0041\U000e0042") == "a"  # tags outside a flag


def test_outgoing_name_is_one_clean_line() -> None:
    assert outgoing_name(EVIL_NAME) == "[2Jevil"
    assert outgoing_name("Anna\n de\t Vries ") == "Anna de Vries"
    assert outgoing_name("\u3164\u200b") == "?"  # nothing visible left
    assert outgoing_name(f"Tim {FAMILY}") == f"Tim {FAMILY}"


@pytest.mark.parametrize("code_fences", [False, True])
def test_a_split_goes_on_where_it_stopped_with_the_same_pieces(code_fences: bool) -> None:
    lines = [f"line {i:03d} " + ("```" if i % 7 == 0 else "") + "x" * (i % 50) for i in range(300)]
    text = "\n".join(lines)
    pieces = split_pieces(text, 500, code_fences=code_fences, first_limit=300)
    assert len(pieces) > 5 and all(len(p.text) <= 500 for p in pieces)
    for at, piece in enumerate(pieces[:-1]):
        rest = split_pieces(text, 500, code_fences=code_fences, start=piece.end, carry=piece.carry)
        assert rest == pieces[at + 1 :]
    if not code_fences:
        assert "".join(p.text for p in pieces) == text
    assert split_pieces(text, 500, start=len(text)) == []


# -- Telegram and Discord --------------------------------------------------------------------


@pytest.fixture
async def bridged(tmp_path: Path) -> AsyncIterator[BridgeHarness]:
    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as tg, FakeDiscord(token=DISCORD_TOKEN) as dc:
        build_worlds(tg, dc)
        dc.add_member(GUILD, DC_EVIL, EVIL_NAME)
        harness = BridgeHarness(tg, dc, tmp_path)
        await harness.start()
        try:
            await harness.link()
            yield harness
        finally:
            await harness.stop()


DC_EVIL = 910_000_000_000_000_150


async def test_quoted_answer_reaches_telegram_and_discord_clean(bridged: BridgeHarness) -> None:
    h, tg, dc = bridged, bridged.tg, bridged.dc
    q = await h.tg_say(TG_ANNA, "Which bakery in Haarlem sells real rye bread?")
    copy = dc.webhook_messages(GENERAL)[-1]
    await h.dc_say(DC_BOB, SNEAKY_ANSWER, reply_to=int(copy["id"]))
    relayed = tg.sent_messages(GROUP)[-1]
    assert relayed["text"] == f"<b>Bob (Discord)</b>: {outgoing_text(SNEAKY_ANSWER)}"
    assert relayed["reply_to_message"]["message_id"] == q

    # Asked again on either side, copss quotes the answer: cleaned.
    again = await h.dc_say(DC_ALICE, "which bakery in haarlem sells real rye bread??")
    [reply] = h.replies_to(again)
    assert "Bakkerij Vaneker on the Grote Markt" in reply["content"]
    asked = await h.tg_say(TG_BEN, "Which bakery in Haarlem sells real rye bread??")
    [tg_reply] = [
        m
        for m in tg.sent_messages(GROUP)
        if (m.get("reply_to_message") or {}).get("message_id") == asked
    ]
    assert "Bakkerij Vaneker on the Grote Markt" in tg_reply["text"]
    for message in dc.sent_messages() + dc.webhook_messages():
        assert_clean(message["content"])
        assert_clean(message["author"]["username"])
    for sent in tg.sent_messages():
        assert_clean(sent["text"])


async def test_terminal_attacks_in_names_and_words_reach_neither_side(
    bridged: BridgeHarness,
) -> None:
    h, tg, dc = bridged, bridged.tg, bridged.dc
    q = await h.tg_say(TG_BEN, EVIL_TEXT, first_name=EVIL_NAME)
    copy = dc.webhook_messages(GENERAL)[-1]
    assert copy["content"] == "]0;pwnhi"
    assert copy["author"]["username"] == "[2Jevil (Telegram)"
    await h.dc_say(DC_EVIL, EVIL_TEXT)
    assert tg.sent_messages(GROUP)[-1]["text"] == "<b>[2Jevil (Discord)</b>: ]0;pwnhi"
    # Edits are cleaned too.
    await h.push_tg(tg.edited_message_update(GROUP, q, EVIL_TEXT + "!", first_name=EVIL_NAME))
    assert dc.message(int(copy["id"]))["content"] == "]0;pwnhi!"
    for message in dc.sent_messages() + dc.webhook_messages():
        assert_clean(message["content"])
        assert_clean(message["author"]["username"])
    for call in tg.calls_to("sendMessage") + tg.calls_to("editMessageText"):
        assert_clean(str(call.params.get("text")))


async def test_plain_text_crosses_unchanged(bridged: BridgeHarness) -> None:
    h, tg, dc = bridged, bridged.tg, bridged.dc
    await h.tg_say(TG_ANNA, PLAIN, first_name=f"Anna {FAMILY}")
    copy = dc.webhook_messages(GENERAL)[-1]
    assert copy["content"] == PLAIN
    assert copy["author"]["username"] == f"Anna {FAMILY} (Telegram)"
    await h.dc_say(DC_ALICE, PLAIN)
    assert tg.sent_messages(GROUP)[-1]["text"] == f"<b>Alice (Discord)</b>: {PLAIN}"


# -- the console's terminal ------------------------------------------------------------------


@pytest.fixture
async def terminal() -> AsyncIterator[tuple[io.TextIOWrapper, io.StringIO]]:
    """A console input nobody types on (a pipe kept open) and the screen it prints to. At the
    end the input ends, and the console's reading thread is waited for while the event loop
    still runs (it hands the end of input to the loop)."""
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "r") as stdin:
        try:
            yield stdin, io.StringIO()
        finally:
            os.close(write_end)
            for thread in threading.enumerate():
                if "_read_lines" in thread.name:
                    await asyncio.to_thread(thread.join, 5)


async def test_console_prints_bridged_names_and_words_clean(
    tmp_path: Path, terminal: tuple[io.TextIOWrapper, io.StringIO]
) -> None:
    stdin, screen = terminal
    async with FakeTelegramAPI(token=DEFAULT_TOKEN) as api:
        api.add_chat(GROUP, "supergroup", title="Expats NL")
        api.set_member_status(GROUP, 302, "administrator")
        console = ConsoleAdapter("bob", terminal=True, stdin=stdin, stdout=screen)
        tg = TelegramHarness(api, tmp_path, extra_adapters=[console])
        await tg.start()
        try:
            await console.command("link", f"telegram:{GROUP}", user="bob")
            await tg.push(api.message_update(GROUP, 302, "/link console:console"))
            assert "Linked" in api.sent_messages(GROUP)[-1]["text"]

            _, q = await tg.push(api.message_update(GROUP, 301, EVIL_TEXT, first_name=EVIL_NAME))
            await tg.push(api.edited_message_update(GROUP, q, EVIL_TEXT + "!"))
            await tg.push(
                api.message_update(GROUP, 303, "Where can I recycle old paint in Leiden?")
            )
            copy = [s for s in console.said if "old paint" in s.text][-1]
            await console.push(SNEAKY_ANSWER, EVIL_NAME, copy.number)
            await tg.settle()
            await console.push("where to recycle old paint in leiden??", user="carol")
            await tg.settle()
        finally:
            await tg.stop()
    shown = screen.getvalue()
    assert "[2Jevil (Telegram): ]0;pwnhi" in shown
    assert "]0;pwnhi!" in shown.split("edited)")[1]
    assert any("answered before" in s.text and "Bakkerij Vaneker" in s.text for s in console.said)
    assert_clean(shown)
    for said in console.said:
        assert_clean(said.text)
    # The console member's name and answer reached Telegram clean as well.
    for sent in api.sent_messages(GROUP):
        assert_clean(sent["text"])
    relayed = [m["text"] for m in api.sent_messages(GROUP) if "Vaneker" in m["text"]]
    assert relayed == [f"<b>[2Jevil (console)</b>: {outgoing_text(SNEAKY_ANSWER)}"]
