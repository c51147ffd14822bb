"""Talk to Twitch's Helix API with an app access token (client-credentials flow).

    helix = HelixClient(cfg.twitch)
    for stream in helix.top_streams("509658", limit=20):
        print(stream.user_login, stream.viewer_count)

What Twitch makes normal is handled here, once: the token is minted on first
use and reused; a 401 mints a new token and retries once; the rate-limit
bucket is read from `Ratelimit-*` headers and, when it is empty, the client
waits for `Ratelimit-Reset` instead of sending (and a 429 waits the same
way); pagination follows opaque cursors, caps the pages and drops streams it
has already seen, because listings shift while they are paged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from monitor.config import TwitchConfig
from monitor.errors import AuthError, HelixError, NotFoundError

log = logging.getLogger(__name__)

MAX_PAGE_SIZE = 100
# Never sleep longer than this for one rate-limit wait: a Reset far in the
# future means a clock problem, and waiting forever would hang the daemon.
MAX_RATELIMIT_WAIT_SECONDS = 60.0
MAX_429_RETRIES = 3


@dataclass(frozen=True)
class Stream:
    """One live stream as Helix /streams lists it."""

    id: str
    user_id: str
    user_login: str
    user_name: str
    game_id: str
    game_name: str
    viewer_count: int
    thumbnail_url: str
    started_at: str

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> Stream:
        return cls(
            id=str(item["id"]),
            user_id=str(item["user_id"]),
            user_login=str(item["user_login"]),
            user_name=str(item.get("user_name", item["user_login"])),
            game_id=str(item.get("game_id", "")),
            game_name=str(item.get("game_name", "")),
            viewer_count=int(item.get("viewer_count", 0)),
            thumbnail_url=str(item.get("thumbnail_url", "")),
            started_at=str(item.get("started_at", "")),
        )


class HelixClient:
    """A thread-safe Helix client; one per process is enough."""

    def __init__(
        self,
        cfg: TwitchConfig,
        *,
        session: requests.Session | None = None,
        on_request: Callable[[str, int, int | None], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ):
        self._cfg = cfg
        self._session = session or requests.Session()
        self._on_request = on_request
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._remaining: int | None = None
        self._reset_at = 0.0

    # -- the token -----------------------------------------------------------

    def token(self) -> str:
        """Return a valid app access token, minting one when there is none."""
        with self._lock:
            # Renew a minute early so a token does not expire mid-cycle.
            if self._token is None or self._clock() > self._token_expires_at - 60:
                self._token, lifetime = self._mint_token()
                self._token_expires_at = self._clock() + lifetime
            return self._token

    def _invalidate(self, token: str) -> None:
        with self._lock:
            if self._token == token:
                self._token = None

    def _mint_token(self) -> tuple[str, float]:
        secret = self._cfg.client_secret.get_secret_value()
        if not self._cfg.client_id or not secret:
            raise AuthError(
                "no Twitch app credentials: set twitch.client_id and twitch.client_secret "
                "(or TWITCH_CLIENT_ID / TWITCH_CLIENT_SECRET)"
            )
        url = self._cfg.auth_url.rstrip("/") + "/token"
        params = {
            "client_id": self._cfg.client_id,
            "client_secret": secret,
            "grant_type": "client_credentials",
        }
        response = self._send("POST", url, "token", data=params)
        if response.status_code != 200:
            raise AuthError(
                f"Twitch refused the app credentials at {url} (HTTP {response.status_code}: "
                f"{_message(response)}): check twitch.client_id and twitch.client_secret",
                status=response.status_code,
            )
        body = _json(response, url)
        return str(body["access_token"]), float(body.get("expires_in", 3600))

    # -- requests ------------------------------------------------------------

    def get(self, endpoint: str, params: Mapping[str, Any] | list[tuple[str, Any]] | None = None) -> dict:
        """GET a Helix endpoint (e.g. "streams") and return its decoded JSON body."""
        url = self._cfg.helix_url.rstrip("/") + "/" + endpoint.lstrip("/")
        retried_auth = False
        for _ in range(MAX_429_RETRIES + 2):
            self._wait_for_bucket()
            token = self.token()
            headers = {"Client-Id": self._cfg.client_id, "Authorization": f"Bearer {token}"}
            response = self._send("GET", url, endpoint, params=params, headers=headers)
            self._read_ratelimit(response)
            if response.status_code == 401 and not retried_auth:
                log.info("helix: token rejected (%s), minting a new one", _message(response))
                self._invalidate(token)
                retried_auth = True
                continue
            if response.status_code == 429:
                log.warning("helix: rate limited on %s; waiting for the bucket to refill", endpoint)
                self._remaining = 0
                continue
            if response.status_code == 404:
                raise NotFoundError(f"Helix {endpoint}: not found ({_message(response)})", status=404)
            if response.status_code >= 400:
                raise HelixError(
                    f"Helix {endpoint} answered HTTP {response.status_code}: {_message(response)}",
                    status=response.status_code,
                )
            return _json(response, url)
        raise HelixError(f"Helix {endpoint}: still refused after retries (rate limit or token)", status=429)

    def _send(self, method: str, url: str, endpoint: str, **kwargs: Any) -> requests.Response:
        try:
            response = self._session.request(method, url, timeout=self._cfg.request_timeout_seconds, **kwargs)
        except requests.RequestException as exc:
            if self._on_request:
                self._on_request(endpoint, 0, None)
            raise HelixError(f"cannot reach Twitch at {_origin(url)}: {_short(exc)}") from None
        if self._on_request:
            remaining = response.headers.get("Ratelimit-Remaining")
            self._on_request(endpoint, response.status_code, int(remaining) if remaining else None)
        return response

    def _read_ratelimit(self, response: requests.Response) -> None:
        remaining = response.headers.get("Ratelimit-Remaining")
        reset = response.headers.get("Ratelimit-Reset")
        with self._lock:
            if remaining is not None and remaining.isdigit():
                self._remaining = int(remaining)
            if reset is not None and reset.isdigit():
                self._reset_at = float(reset)

    def _wait_for_bucket(self) -> None:
        with self._lock:
            empty = self._remaining is not None and self._remaining <= 0
            wait = self._reset_at - self._clock() if empty else 0.0
            if empty:
                # Assume the bucket refills at Reset; the next answer corrects us.
                self._remaining = None
        if wait > 0:
            wait = min(wait, MAX_RATELIMIT_WAIT_SECONDS)
            log.info("helix: rate-limit bucket empty; waiting %.1fs for Ratelimit-Reset", wait)
            self._sleep(wait)

    # -- pagination and typed helpers ------------------------------------------

    def paginate(
        self, endpoint: str, params: Mapping[str, Any], limit: int, key: str = "id", page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[dict]:
        """Yield up to `limit` distinct items (by `key`) across cursor pages."""
        seen: set[str] = set()
        cursor: str | None = None
        for _ in range(self._cfg.max_pages):
            page_params = dict(params)
            page_params["first"] = min(page_size, MAX_PAGE_SIZE, max(1, limit - len(seen)))
            if cursor:
                page_params["after"] = cursor
            body = self.get(endpoint, page_params)
            for item in body.get("data", []):
                item_key = str(item.get(key))
                if item_key in seen:
                    continue  # listings shift while paged: a stream can repeat
                seen.add(item_key)
                yield item
                if len(seen) >= limit:
                    return
            cursor = (body.get("pagination") or {}).get("cursor")
            if not cursor or not body.get("data"):
                return

    def top_streams(self, game_id: str, limit: int) -> list[Stream]:
        """Return the top `limit` live streams of a category, by viewers."""
        items = self.paginate("streams", {"game_id": game_id, "type": "live"}, limit)
        return [Stream.from_json(item) for item in items]

    def stream_of(self, login: str) -> Stream | None:
        """Return the live stream of a channel, or None when it is offline."""
        data = self.get("streams", {"user_login": login, "type": "live"}).get("data", [])
        return Stream.from_json(data[0]) if data else None

    def user(self, login: str) -> dict | None:
        """Return the Helix user record of a login, or None when there is none."""
        data = self.get("users", {"login": login}).get("data", [])
        return data[0] if data else None

    def game_names(self, game_ids: list[str]) -> dict[str, str]:
        """Return {id: name} for the categories that exist among game_ids."""
        names: dict[str, str] = {}
        for start in range(0, len(game_ids), MAX_PAGE_SIZE):
            chunk = game_ids[start : start + MAX_PAGE_SIZE]
            body = self.get("games", [("id", gid) for gid in chunk])
            names.update({str(g["id"]): str(g["name"]) for g in body.get("data", [])})
        return names

    def clips(
        self, broadcaster_id: str, limit: int, started_at: str | None = None, ended_at: str | None = None
    ) -> list[dict]:
        """Return a channel's top clips, optionally inside a creation window (RFC 3339)."""
        params: dict[str, Any] = {"broadcaster_id": broadcaster_id}
        if started_at:
            params["started_at"] = started_at
        if ended_at:
            params["ended_at"] = ended_at
        return list(self.paginate("clips", params, limit))


def _json(response: requests.Response, url: str) -> dict:
    try:
        body = response.json()
    except ValueError:
        raise HelixError(f"{_origin(url)} answered with something that is not JSON") from None
    if not isinstance(body, dict):
        raise HelixError(f"{_origin(url)} answered with unexpected JSON")
    return body


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
        return str(body.get("message") or body.get("error") or response.reason)
    except ValueError:
        return response.reason or "no message"


def _origin(url: str) -> str:
    """Return scheme://host:port of a URL: never echo query strings, which may hold secrets."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.split('/', 1)[0]}"


def _short(exc: Exception) -> str:
    text = type(exc).__name__
    if isinstance(exc, requests.ConnectionError):
        return "connection refused or host unreachable"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    return text
