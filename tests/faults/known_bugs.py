"""copss bugs the fault suite found and names when it marks a test xfail for them: each
string says what goes wrong and where, so that the xfail reason points at the code to fix."""

#: Why Discord messages are lost after a restart (a copss bug, adapters/discord): catching up
#: starts after the newest message stored from the channel, but a newer one can be stored
#: first (one Discord sent while discord.py still waited for servers after connecting, as
#: on_ready, which queues the catch-up, comes after it; or one stored before a kill cut a
#: catch-up short), and what was said before it is then never read.
CATCH_UP_BUG = (
    "copss bug: Discord's catch-up starts after the newest stored message, which can be "
    "newer than messages not read yet (adapters/discord/client.py on_ready, "
    "storage/repos/conversation.py checkpoints)"
)
#: Why a member's message is parked under repeated kills (a copss bug, bot/dispatch.py): each
#: kill while an event is being handled counts as an attempt, so an ordinary message in a
#: batch cut short by one kill, then retried alone at two starts that were killed too, is
#: parked as if it had killed copss itself: never stored, answered or bridged.
CRASH_PARKING_BUG = (
    "copss bug: an event whose handling three kills interrupted is parked as poison, though "
    "the kills had nothing to do with it (bot/dispatch.py _claim)"
)
#: What an event parked by CRASH_PARKING_BUG says.
PARKED_BY_KILLS = "parked: copss stopped while handling it"
#: Why a Telegram reply is posted twice after a server error (a copss bug,
#: adapters/telegram/adapter.py): every 5xx is taken for "Telegram did not do it" and the
#: send is made again, but a 502 or 504 comes from the proxy in front of the Bot API and says
#: nothing about whether the message was posted; for copss's own words (at-most-once) such a
#: send is as uncertain as a timeout.
TELEGRAM_5XX_BUG = (
    "copss bug: a reply Telegram posted but answered 502 is sent again, as every 5xx counts "
    "as not posted (adapters/telegram/adapter.py _maybe_arrived)"
)
