"""Events survive the trip through the inbox unchanged."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.events import (
    Author,
    ChannelRef,
    CommandEvent,
    DeleteEvent,
    EditEvent,
    Event,
    MessageEvent,
    ReactionEvent,
    dedup_key,
    from_record,
    to_record,
)

CH = ChannelRef("telegram", "-1001", "7")
AL = Author("telegram", "42", "Alice 🌷")
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def test_round_trip_every_kind() -> None:
    events: list[Event] = [
        MessageEvent(CH, "5", AL, "hoi ‮evil", NOW, reply_to="4", attachments=("a.png",)),
        EditEvent(CH, "5", "edited", NOW, AL),
        DeleteEvent(CH, "5"),
        ReactionEvent(CH, "5", AL, "✅", True),
        CommandEvent(CH, "6", AL, "ask", "bsn?", NOW),
    ]
    for event in events:
        assert from_record(to_record(event)) == event


def test_raw_is_not_stored_and_does_not_affect_equality() -> None:
    a = MessageEvent(CH, "5", AL, "x", NOW, raw=object())
    assert "raw" not in to_record(a)
    assert a == MessageEvent(CH, "5", AL, "x", NOW)


def test_dedup_keys_distinguish_kinds_and_edits() -> None:
    msg = MessageEvent(CH, "5", AL, "x", NOW)
    edit1 = EditEvent(CH, "5", "y", NOW)
    edit2 = EditEvent(CH, "5", "z", NOW.replace(minute=1))
    keys = {dedup_key(msg), dedup_key(edit1), dedup_key(edit2), dedup_key(DeleteEvent(CH, "5"))}
    assert len(keys) == 4
    other_chat = MessageEvent(ChannelRef("telegram", "-1002"), "5", AL, "x", NOW)
    assert dedup_key(other_chat) != dedup_key(msg)
