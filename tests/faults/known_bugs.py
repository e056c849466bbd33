"""copss bugs the fault suite found and names when it marks a test xfail for them: each
string says what goes wrong and where, so that the xfail reason points at the code to fix."""

#: Why Discord messages can still be lost after a restart (a copss bug, adapters/discord):
#: a catch-up starts after the newest message stored from the channel when the gateway
#: session began. When a kill cut the previous catch-up short after live messages of that
#: session were stored, those are newer than what the catch-up had not read yet, which is
#: then never read. (Live messages of the new session no longer count: on_connect notes the
#: checkpoints before they are stored.)
CATCH_UP_BUG = (
    "copss bug: Discord's catch-up starts after the newest message stored when the session "
    "began, which after a catch-up cut short by a kill can be newer than messages not read "
    "yet (adapters/discord/client.py on_connect, adapters/discord/intake.py catch_up)"
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
