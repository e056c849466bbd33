"""Discord's REST rate limits, for the fake: per-route buckets keyed by their top-level
resource, the global per-bot limit, and the headers and 429 bodies Discord answers with.

What Discord does, and this module with it:

* Every answer of a limited route carries ``X-RateLimit-Limit``, ``-Remaining``, ``-Reset``
  (epoch seconds), ``-Reset-After`` (seconds, fractional) and ``-Bucket`` (an opaque hash
  shared by the routes that share a limit).
* A bucket counts per top-level resource: ``POST /channels/1/messages`` and
  ``POST /channels/2/messages`` have the same bucket hash but separate counts.
* Past a route's limit: 429, body ``{"message": "You are being rate limited.",
  "retry_after": <seconds>, "global": false}``, headers ``Retry-After`` and
  ``X-RateLimit-Scope: user``.
* Past the global limit (50 requests per second per bot; interaction callbacks and webhook
  executions with a token are not counted): 429 with ``"global": true``,
  ``X-RateLimit-Global: true`` and ``X-RateLimit-Scope: global``.
* A refused request does not count.

``time_scale`` divides every window (the headers then tell the scaled times), so a test can
exercise the limits at Discord's ratios without waiting seconds.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections import deque
from dataclasses import dataclass, field

RATE_LIMITED_MESSAGE = "You are being rate limited."


@dataclass(frozen=True)
class RouteLimit:
    """A route's bucket: ``pattern`` fully matches the API path, its ``major`` group names
    the top-level resource the count is kept per."""

    method: str
    pattern: str
    limit: int
    per: float
    bucket: str


#: Limits close to what Discord answers bots (message create 5 per 5 s per channel, and so
#: on); any other route gets ``DEFAULT_LIMIT``.
DISCORD_ROUTE_LIMITS = (
    RouteLimit(
        "POST", r"/channels/(?P<major>\d+)/messages", 5, 5.0, "80c17d2f203122d936070c88c8d10f33"
    ),
    RouteLimit(
        "PATCH",
        r"/channels/(?P<major>\d+)/messages/\d+",
        5,
        5.0,
        "a9ef7d5b8a4a2fbf3cb8b2f2f6cba3b6",
    ),
    RouteLimit(
        "DELETE",
        r"/channels/(?P<major>\d+)/messages/\d+",
        5,
        1.0,
        "d2b1f9e6c0e7e4f2b1a1a0c9b8d7e6f5",
    ),
    RouteLimit(
        "PUT",
        r"/channels/(?P<major>\d+)/messages/\d+/reactions/.+",
        1,
        0.25,
        "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    ),
    RouteLimit(
        "POST", r"/webhooks/(?P<major>\d+/[^/?]+)", 5, 2.0, "7e3c1a9b5d2f4e6a8c0b1d3f5e7a9c2b"
    ),
    RouteLimit(
        "PATCH",
        r"/webhooks/(?P<major>\d+/[^/]+)/messages/.+",
        5,
        2.0,
        "3b5d7f9a1c2e4a6c8e0b2d4f6a8c0e2d",
    ),
)
DEFAULT_LIMIT = RouteLimit("*", r"(?P<major>/[^/]+/\d+).*", 50, 1.0, "")
GLOBAL_PER_SECOND = 50


@dataclass
class _Bucket:
    limit: int
    window: float
    reset_at: float = 0.0  # monotonic; 0: no window open
    used: int = 0


@dataclass(frozen=True)
class Refusal:
    """A request the limits refused: which limit, and the 429 answer."""

    scope: str  # "user" (a route's bucket) or "global"
    method: str
    path: str
    bucket: str
    retry_after: float
    body: dict[str, object]
    headers: dict[str, str]


@dataclass
class RateLimiter:
    """Counts requests against per-route buckets and the global limit.

    ``enforce`` off (the default): every answer still carries truthful headers of a bucket
    so large that no client ever waits, and nothing is refused.
    """

    enforce: bool = False
    routes: tuple[RouteLimit, ...] = DISCORD_ROUTE_LIMITS
    global_per_second: int = GLOBAL_PER_SECOND
    time_scale: float = 1.0
    refusals: list[Refusal] = field(default_factory=list)
    _buckets: dict[tuple[str, str], _Bucket] = field(default_factory=dict)
    _global: deque[float] = field(default_factory=deque)
    _compiled: list[tuple[RouteLimit, re.Pattern[str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._compiled = [(r, re.compile(r.pattern)) for r in self.routes]

    def _route(self, method: str, path: str) -> tuple[RouteLimit, str]:
        for route, pattern in self._compiled:
            if route.method in ("*", method):
                match = pattern.fullmatch(path)
                if match is not None:
                    return route, match.group("major")
        match = re.fullmatch(DEFAULT_LIMIT.pattern, path)
        major = match.group("major") if match else path
        # Each (method, route shape) of the other routes is a bucket of its own.
        shape = re.sub(r"\d{5,}", "{id}", path)
        digest = hashlib.md5(f"{method} {shape}".encode()).hexdigest()
        return RouteLimit(method, shape, DEFAULT_LIMIT.limit, DEFAULT_LIMIT.per, digest), major

    def check(self, method: str, path: str) -> tuple[Refusal | None, dict[str, str]]:
        """Count one request: (None, headers to answer with) when allowed, else (the
        refusal, its headers)."""
        now = time.monotonic()
        scale = self.time_scale
        route, major = self._route(method, path)
        key = (route.bucket, major)
        bucket = self._buckets.get(key)
        if bucket is None:
            limit = route.limit if self.enforce else 10_000
            bucket = self._buckets[key] = _Bucket(limit, route.per / scale)
        if now >= bucket.reset_at:
            bucket.reset_at, bucket.used = now + bucket.window, 0

        counted = self.enforce and not path.startswith(("/interactions/", "/webhooks/"))
        if counted:
            while self._global and self._global[0] <= now - 1.0 / scale:
                self._global.popleft()
            if len(self._global) >= self.global_per_second:
                retry = self._global[0] + 1.0 / scale - now
                headers = {
                    "Retry-After": str(max(1, math.ceil(retry))),
                    "X-RateLimit-Global": "true",
                    "X-RateLimit-Scope": "global",
                }
                return self._refuse("global", method, path, route.bucket, retry, headers)

        reset_after = max(0.0, bucket.reset_at - now)
        headers = {
            "X-RateLimit-Limit": str(bucket.limit),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": route.bucket,
        }
        if bucket.used >= bucket.limit:
            headers.update(
                {
                    "X-RateLimit-Remaining": "0",
                    "Retry-After": str(max(1, math.ceil(reset_after))),
                    "X-RateLimit-Scope": "user",
                }
            )
            return self._refuse("user", method, path, route.bucket, reset_after, headers)
        bucket.used += 1
        if counted:
            self._global.append(now)
        headers["X-RateLimit-Remaining"] = str(bucket.limit - bucket.used)
        return None, headers

    def _refuse(
        self, scope: str, method: str, path: str, bucket: str, retry: float, headers: dict[str, str]
    ) -> tuple[Refusal, dict[str, str]]:
        body: dict[str, object] = {
            "message": RATE_LIMITED_MESSAGE,
            "retry_after": round(max(retry, 0.001), 3),
            "global": scope == "global",
        }
        refusal = Refusal(scope, method, path, bucket, retry, body, headers)
        self.refusals.append(refusal)
        return refusal, headers
