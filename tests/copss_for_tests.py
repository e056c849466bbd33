"""``copss`` as tests run it in a subprocess when they need settings no user has: run as a
script with copss's own arguments (and ``PYTHONPATH`` the repository, so that ``tests/faq``
beside this file does not shadow the ``faq`` package); nothing imports it.

- ``COPSS_TEST_CONNECT_RETRY="FIRST,MAX"``: seconds between attempts to reach a platform
  (:data:`bot.app.CONNECT_RETRY` and :data:`bot.app.CONNECT_RETRY_MAX`), so that a test sees
  several attempts within a second or two;
- ``COPSS_TEST_DISCORD="http://127.0.0.1:PORT"``: discord.py's REST API and gateway at that
  address (a fake), as ``tests.fakes.discord_gateway.patch_discord`` does in-process.
"""

from __future__ import annotations

import os
import sys

from bot import app, cli


def _apply_test_settings() -> None:
    retry = os.environ.get("COPSS_TEST_CONNECT_RETRY")
    if retry:
        first, _, most = retry.partition(",")
        app.CONNECT_RETRY = float(first)
        app.CONNECT_RETRY_MAX = float(most or first)
    discord_at = os.environ.get("COPSS_TEST_DISCORD")
    if discord_at:
        import discord.gateway
        import discord.http
        import yarl

        discord.http.Route.BASE = f"{discord_at}/api/v10"
        gateway = yarl.URL(discord_at).with_scheme("ws") / "gateway"
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = gateway


if __name__ == "__main__":
    _apply_test_settings()
    sys.exit(cli.main(sys.argv[1:]))
