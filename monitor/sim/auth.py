"""Emulate Twitch's app-token flow and Helix's per-client rate-limit bucket.

    tokens = TokenStore(ttl_seconds=3600, clock=time.time)
    token = tokens.issue("clientid")
    tokens.client_of(token)        # "clientid" until it expires; None after
    bucket = RateLimiter(size=800, refill_per_second=800 / 60, clock=time.time)
    bucket.take("clientid")        # Allowance(allowed=True, limit=800, remaining=799, reset=...)

Both answer in the shapes and with the messages Twitch uses; both are thread-safe.
"""

from __future__ import annotations

import math
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass


class OAuthFailure(Exception):
    """The token endpoint refuses; body is Twitch's JSON for it."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.body = {"status": status, "message": message}


@dataclass(frozen=True)
class Token:
    client_id: str
    expires_at: float


class TokenStore:
    """Issue, look up, expire and revoke app access tokens."""

    def __init__(self, ttl_seconds: float, clock: Callable[[], float]):
        self.ttl = ttl_seconds
        self.clock = clock
        self.clients: dict[str, str] = {}
        self._tokens: dict[str, Token] = {}
        self._ever: list[str] = []
        self._lock = threading.Lock()
        self.issued = 0

    def register(self, client_id: str, client_secret: str) -> None:
        with self._lock:
            self.clients[client_id] = client_secret

    def grant(self, params: dict[str, str]) -> dict[str, object]:
        """Answer POST /oauth2/token for the client-credentials grant, or raise OAuthFailure."""
        client_id = params.get("client_id", "")
        if not client_id:
            raise OAuthFailure(400, "missing client id")
        with self._lock:
            secret = self.clients.get(client_id)
        if secret is None:
            raise OAuthFailure(400, "invalid client")
        if not params.get("client_secret"):
            raise OAuthFailure(400, "missing client secret")
        if not secrets.compare_digest(params["client_secret"], secret):
            raise OAuthFailure(403, "invalid client secret")
        grant_type = params.get("grant_type", "")
        if not grant_type:
            raise OAuthFailure(400, "missing grant type")
        if grant_type != "client_credentials":
            raise OAuthFailure(400, "unsupported grant type")
        token = self.issue(client_id)
        return {"access_token": token, "expires_in": int(self.ttl), "token_type": "bearer"}

    def issue(self, client_id: str) -> str:
        token = secrets.token_hex(15)  # Twitch tokens are 30 lowercase alphanumerics
        with self._lock:
            self._tokens[token] = Token(client_id, self.clock() + self.ttl)
            self._ever.append(token)
            self.issued += 1
        return token

    def issued_tokens(self) -> list[str]:
        """Return every token issued so far, revoked and expired ones too (tests grep output for them)."""
        with self._lock:
            return list(self._ever)

    def lookup(self, token: str) -> Token | None:
        """Return the token's record while it is valid, else None."""
        with self._lock:
            record = self._tokens.get(token)
        if record is None or self.clock() >= record.expires_at:
            return None
        return record

    def validate(self, authorization: str) -> dict[str, object]:
        """Answer GET /oauth2/validate for an 'OAuth <token>' header, or raise OAuthFailure."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() not in ("oauth", "bearer") or not token:
            raise OAuthFailure(401, "missing authorization token")
        record = self.lookup(token.strip())
        if record is None:
            raise OAuthFailure(401, "invalid access token")
        remaining = max(0, int(record.expires_at - self.clock()))
        return {"client_id": record.client_id, "scopes": [], "expires_in": remaining}

    def revoke(self, params: dict[str, str]) -> None:
        """Answer POST /oauth2/revoke (client_id, token), or raise OAuthFailure."""
        with self._lock:
            record = self._tokens.get(params.get("token", ""))
            if record is None:
                raise OAuthFailure(400, "Invalid token")
            if record.client_id != params.get("client_id"):
                raise OAuthFailure(404, "client does not exist")
            del self._tokens[params["token"]]

    def expire_all(self) -> None:
        """Make every token issued so far invalid, as if its lifetime had run out."""
        now = self.clock()
        with self._lock:
            self._tokens = {t: Token(r.client_id, min(r.expires_at, now)) for t, r in self._tokens.items()}


@dataclass(frozen=True)
class Allowance:
    allowed: bool
    limit: int
    remaining: int
    reset: int  # unix seconds when the bucket is full again

    def headers(self) -> dict[str, str]:
        return {"Ratelimit-Limit": str(self.limit), "Ratelimit-Remaining": str(self.remaining),
                "Ratelimit-Reset": str(self.reset)}


class RateLimiter:
    """One token bucket per client id: `size` points, refilled continuously; one point per request."""

    def __init__(self, size: int, refill_per_second: float, clock: Callable[[], float]):
        if size <= 0 or refill_per_second <= 0:
            raise ValueError("bucket size and refill rate must be positive")
        self.size, self.rate, self.clock = size, refill_per_second, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (points, as of time)
        self._held_until = 0.0
        self._lock = threading.Lock()

    def take(self, key: str) -> Allowance:
        """Spend one point of key's bucket if there is one."""
        now = self.clock()
        with self._lock:
            points = self._points(key, now)
            allowed = points >= 1
            if allowed:
                points -= 1
            self._buckets[key] = (points, now)
            return Allowance(allowed, self.size, int(points), self._reset_at(points, now))

    def peek(self, key: str) -> Allowance:
        """Report key's bucket without spending (for answers that are refused before counting)."""
        now = self.clock()
        with self._lock:
            points = self._points(key, now)
            return Allowance(points >= 1, self.size, int(points), self._reset_at(points, now))

    def drain(self, reset_in: float) -> None:
        """Empty every bucket; they stay empty until now + reset_in, then are full."""
        now = self.clock()
        with self._lock:
            self._held_until = now + reset_in
            self._buckets = {key: (0.0, now) for key in self._buckets}

    def _points(self, key: str, now: float) -> float:
        if now < self._held_until:
            return 0.0
        points, as_of = self._buckets.get(key, (float(self.size), now))
        if as_of < self._held_until <= now:  # a drain's hold ended since the last look: full again
            return float(self.size)
        return min(float(self.size), points + (now - as_of) * self.rate)

    def _reset_at(self, points: float, now: float) -> int:
        if now < self._held_until:
            return math.ceil(self._held_until)
        return math.ceil(now + (self.size - points) / self.rate)
