"""Whether an answer cites an official source: a link to a configured government domain."""

from __future__ import annotations

import re
from collections.abc import Iterable

# A web address with or without a scheme ("https://ind.nl/...", "www.ind.nl", "see ind.nl"):
# members cite sites both ways. The host is what decides.
_HOST = re.compile(
    r"(?:https?://)?((?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,})(?![a-z0-9-])",
    re.IGNORECASE,
)

#: What every host has (a label's last character, a dot, the next label's first letter),
#: found far faster than a host: most answers have no host, and skip the full search.
_MAYBE_HOST = re.compile(r"[a-z0-9]\.[a-z]", re.IGNORECASE)


def hosts_in(text: str) -> list[str]:
    """Host names mentioned in ``text`` (lower-case, without a leading ``www.``)."""
    if _MAYBE_HOST.search(text) is None:
        return []
    return [m.group(1).lower().removeprefix("www.") for m in _HOST.finditer(text)]


class OfficialSources:
    """A set of domains; a host is official when it is one of them or a subdomain of one."""

    def __init__(self, domains: Iterable[str]) -> None:
        self.domains: tuple[str, ...] = tuple(sorted({d.lower().strip(".") for d in domains}))
        self._set = frozenset(self.domains)

    def is_official(self, host: str) -> bool:
        """True for ``ind.nl`` and ``www.ind.nl`` when ``ind.nl`` is listed; not ``find.nl``."""
        parts = host.lower().strip(".").split(".")
        return any(".".join(parts[i:]) in self._set for i in range(len(parts) - 1))

    def cites(self, text: str) -> bool:
        """Whether ``text`` links to (or names the site of) an official source."""
        return any(self.is_official(h) for h in hosts_in(text))
