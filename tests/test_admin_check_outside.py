"""Admin checks (Telegram getChatMember) run outside the handlers' transaction: a slow check in
one chat holds up neither storing nor handling another chat's updates."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bot.features.commands import Commands
from tests.adapters.tg_harness import TelegramHarness
from tests.fakes.telegram_api import DEFAULT_TOKEN, FakeTelegramAPI, JSONDict

CHAT_A, CHAT_B = -1001000000011, -1001000000012
ADMIN, MEMBER = 7101, 7102
SLOW = 4.0


class SlowAdminChecks(FakeTelegramAPI):
    """The fake, but getChatMember in chat A takes ``SLOW`` seconds to answer."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.asked = asyncio.Event()
        self.answered = asyncio.Event()
        self.register_method("getChatMember", self._slow)

    async def _slow(self, params: JSONDict) -> JSONDict:
        if int(params["chat_id"]) == CHAT_A:
            self.asked.set()
            await asyncio.sleep(SLOW)
            self.answered.set()
        return await self._m_get_chat_member(params)


async def test_a_slow_admin_check_does_not_hold_up_another_chat(tmp_path: Path) -> None:
    async with SlowAdminChecks(token=DEFAULT_TOKEN) as api:
        api.add_chat(CHAT_A, "supergroup", title="A")
        api.add_chat(CHAT_B, "supergroup", title="B")
        api.set_member_status(CHAT_A, ADMIN, "administrator")
        h = TelegramHarness(api, tmp_path)
        await h.start()
        try:
            api.push_update(api.message_update(CHAT_A, ADMIN, "/stats"))
            await asyncio.wait_for(api.asked.wait(), 5)
            b = api.push_update(api.message_update(CHAT_B, MEMBER, "/help"))

            # B's update is stored and confirmed, handled and answered while A's admin check
            # is still under way.
            await api.wait_until_confirmed(b, within=SLOW / 2)
            await api.wait_for_sent_messages(1, chat_id=CHAT_B, within=SLOW / 2)
            assert not api.answered.is_set()
            assert api.sent_texts(CHAT_A) == []

            # A's command is carried out once the platform answered, as an admin's.
            await api.wait_for_sent_messages(1, chat_id=CHAT_A, within=SLOW + 5)
            assert api.answered.is_set()
            assert api.sent_texts(CHAT_A)[0].startswith("Last 30 days.")
            assert h.app is not None and h.app.hub is not None
            commands = next(x for x in h.app.hub.handlers if isinstance(x, Commands))
            # The command counted once against the admin-check limit, though its handlers ran
            # twice (before and after asking).
            assert len(commands.admin_checks._hits[f"telegram:{ADMIN}"]) == 1
            await h.settle()
        finally:
            await h.stop()
