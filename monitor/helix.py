"""Talk to Twitch's Helix API with an app access token (client-credentials flow).

    helix = HelixClient(cfg.twitch)
    for stream in helix.top_streams("509658", limit=20):
        print(stream.user_login, stream.viewer_count)

What Twitch makes normal is handled here, once: the token is minted on first
use and reused until 3/4 of its lifetime has passed (Twitch throttles minting;
app tokens live for weeks), validated hourly against /oauth2/validate as
Twitch asks, and a 401 mints a new one (once, however many threads saw it)
and retries once; a token endpoint that is down is retried after a growing,
jittered backoff, failing fast in between instead of hammering it. The
rate-limit bucket is read from `Ratelimit-*` headers and, when it is empty,
no thread sends until `Ratelimit-Reset` (a 429 waits the same way). 5xx
answers and dropped connections are retried a bounded number of times.
Pagination follows opaque cursors, caps the pages, stops at a cursor it has
already followed and drops streams it has already seen, because listings
shift while they are paged. Every body is capped in size, and items whose
fields have the wrong type or shape are dropped with one log line.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import requests

from monitor.config import TwitchConfig
from monitor.errors import AuthError, HelixError, NotFoundError

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_PAGE_SIZE = 100
# Never sleep longer than this for one rate-limit wait: a Reset far in the
# future means a clock problem, and waiting forever would hang the daemon.
MAX_RATELIMIT_WAIT_SECONDS = 60.0
MAX_429_RETRIES = 3
# 5xx answers and dropped connections: retried this many times, after a short jittered pause.
MAX_SERVER_RETRIES = 2
SERVER_RETRY_SECONDS = 0.5
# Renew a token once this fraction of its lifetime has passed, and validate it this often.
RENEW_FRACTION = 0.75
VALIDATE_EVERY_SECONDS = 3600.0
# After the token endpoint failed, wait this long (doubling, jittered, capped) before the next try.
MINT_BACKOFF_SECONDS = 2.0
MINT_BACKOFF_MAX_SECONDS = 300.0
# The largest body read from Helix or OAuth: a full page of 100 streams is about 100 kB.
MAX_BODY_BYTES = 4 * 1024 * 1024

LOGIN_RE = re.compile(r"[a-z0-9_]{1,25}")
_ID_RE = re.compile(r"[0-9]{1,20}")
_MAX_TEXT = 1000  # longest free-text field (name, title, URL) taken from Helix


def valid_login(login: object) -> bool:
    """Return whether a value is a Twitch login: 1 to 25 of a-z, 0-9 and _ (safe in a path)."""
    return isinstance(login, str) and LOGIN_RE.fullmatch(login) is not None


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
        """Build a Stream from a Helix item; raise ValueError naming the first field of the wrong type or shape."""
        if not isinstance(item, Mapping):
            raise ValueError("item is not an object")
        login = item.get("user_login")
        if not valid_login(login):
            raise ValueError("user_login is not a Twitch login")
        viewers = item.get("viewer_count", 0)
        if isinstance(viewers, bool) or not isinstance(viewers, int) or viewers < 0:
            raise ValueError("viewer_count is not a count")
        game_id = _text(item, "game_id", "")
        if game_id and not _ID_RE.fullmatch(game_id):
            raise ValueError("game_id is not a Twitch id")
        return cls(
            id=_id(item, "id"),
            user_id=_id(item, "user_id"),
            user_login=str(login),
            user_name=_text(item, "user_name", str(login)),
            game_id=game_id,
            game_name=_text(item, "game_name", ""),
            viewer_count=viewers,
            thumbnail_url=_text(item, "thumbnail_url", ""),
            started_at=_text(item, "started_at", ""),
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
        self._renew_at = 0.0
        self._validated_at = 0.0
        self._mint_failures = 0
        self._mint_blocked_until = 0.0
        self._remaining: int | None = None
        self._reset_at = 0.0
        self.tokens_minted = 0

    # -- the token -----------------------------------------------------------

    def token(self) -> str:
        """Return a valid app access token, minting one when there is none or it is 3/4 through its life."""
        with self._lock:
            now = self._clock()
            if self._token is not None and now >= self._renew_at:
                log.info("helix: app token is 3/4 through its lifetime; minting a new one")
                self._token = None
            if self._token is not None and now >= self._validated_at + VALIDATE_EVERY_SECONDS:
                self._validate(now)
            if self._token is None:
                self._token = self._mint(now)
            return self._token

    def _invalidate(self, token: str) -> None:
        # Only the token that was refused: another thread may have minted its successor already.
        with self._lock:
            if self._token == token:
                self._token = None

    def _mint(self, now: float) -> str:
        """Mint a token (the lock held); after a failure, fail fast until the jittered backoff ends."""
        if now < self._mint_blocked_until:
            raise HelixError(
                f"Twitch's token endpoint failed {self._mint_failures} time(s) in a row; "
                f"next try in {self._mint_blocked_until - now:.0f}s", status=503)
        try:
            token, lifetime = self._mint_token()
        except AuthError:
            raise  # wrong credentials: retrying does not help, and the error says what to fix
        except HelixError:
            self._mint_failures += 1
            backoff = min(MINT_BACKOFF_MAX_SECONDS, MINT_BACKOFF_SECONDS * 2 ** (self._mint_failures - 1))
            backoff *= random.uniform(0.5, 1.0)
            self._mint_blocked_until = self._clock() + backoff
            # Debug: the caller reports the failure (one line); calls until the next try say when it comes.
            log.debug("helix: minting an app token failed (%d in a row); next try in %.1fs",
                     self._mint_failures, backoff)
            raise
        now = self._clock()
        self._mint_failures, self._mint_blocked_until = 0, 0.0
        self._renew_at = now + RENEW_FRACTION * lifetime
        self._validated_at = now
        self.tokens_minted += 1
        return token

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
        if response.status_code in (400, 401, 403):
            raise AuthError(
                f"Twitch refused the app credentials at {_origin(url)} (HTTP {response.status_code}: "
                f"{_message(response)}): check twitch.client_id and twitch.client_secret",
                status=response.status_code,
            )
        if response.status_code != 200:
            raise HelixError(f"Twitch's token endpoint at {_origin(url)} answered HTTP {response.status_code}",
                             status=response.status_code)
        body = _json(response, url)
        token, lifetime = body.get("access_token"), body.get("expires_in", 3600)
        if not isinstance(token, str) or not 1 <= len(token) <= 200 or not token.isalnum():
            raise HelixError(f"{_origin(url)} answered without a usable access_token")
        if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)) or lifetime <= 0:
            raise HelixError(f"{_origin(url)} answered with an expires_in that is not a positive number")
        return token, float(lifetime)

    def _validate(self, now: float) -> None:
        """Ask /oauth2/validate about the token (the lock held), as Twitch asks apps to do hourly."""
        assert self._token is not None
        url = self._cfg.auth_url.rstrip("/") + "/validate"
        self._validated_at = now
        try:
            response = self._send("GET", url, "validate", headers={"Authorization": f"OAuth {self._token}"})
        except HelixError as exc:
            log.warning("helix: could not validate the app token (%s); keeping it", exc)
            return
        if response.status_code == 401:
            log.info("helix: the app token no longer validates; minting a new one")
            self._token = None
        elif response.status_code == 200:
            body = _json(response, url)
            left = body.get("expires_in")
            if isinstance(left, (int, float)) and not isinstance(left, bool) and left > 0:
                # Renew by 3/4 of what is left, if that comes before the planned renewal.
                self._renew_at = min(self._renew_at, now + RENEW_FRACTION * left)
        else:
            log.warning("helix: token validation answered HTTP %d; keeping the token", response.status_code)

    # -- requests ------------------------------------------------------------

    def get(self, endpoint: str, params: Mapping[str, Any] | list[tuple[str, Any]] | None = None) -> dict:
        """GET a Helix endpoint (e.g. "streams") and return its decoded JSON body."""
        url = self._cfg.helix_url.rstrip("/") + "/" + endpoint.lstrip("/")
        retried_auth = False
        rate_limited = server_failures = 0
        while True:
            self._wait_for_bucket()
            token = self.token()
            headers = {"Client-Id": self._cfg.client_id, "Authorization": f"Bearer {token}"}
            try:
                response = self._send("GET", url, endpoint, params=params, headers=headers)
            except HelixError as exc:
                if exc.status is not None or server_failures >= MAX_SERVER_RETRIES:
                    raise
                server_failures += 1
                self._pause_after_failure(endpoint, str(exc), server_failures)
                continue
            self._read_ratelimit(response)
            if response.status_code == 401 and not retried_auth:
                log.info("helix: token rejected (%s), minting a new one", _message(response))
                self._invalidate(token)
                retried_auth = True
                continue
            if response.status_code == 429 and rate_limited < MAX_429_RETRIES:
                log.warning("helix: rate limited on %s; waiting for the bucket to refill", endpoint)
                rate_limited += 1
                with self._lock:
                    self._remaining = 0
                continue
            if response.status_code >= 500 and server_failures < MAX_SERVER_RETRIES:
                server_failures += 1
                self._pause_after_failure(endpoint, f"HTTP {response.status_code}", server_failures)
                continue
            if response.status_code == 404:
                raise NotFoundError(f"Helix {endpoint}: not found ({_message(response)})", status=404)
            if response.status_code == 429:
                raise HelixError(f"Helix {endpoint}: still rate limited after {rate_limited} waits", status=429)
            if response.status_code >= 400:
                raise HelixError(
                    f"Helix {endpoint} answered HTTP {response.status_code}: {_message(response)}",
                    status=response.status_code,
                )
            return _json(response, url)

    def _pause_after_failure(self, endpoint: str, what: str, failures: int) -> None:
        pause = SERVER_RETRY_SECONDS * failures * random.uniform(0.5, 1.5)
        log.warning("helix: %s failed (%s); retry %d of %d in %.1fs", endpoint, what, failures,
                    MAX_SERVER_RETRIES, pause)
        self._sleep(pause)

    def _send(self, method: str, url: str, endpoint: str, **kwargs: Any) -> requests.Response:
        try:
            response = self._session.request(
                method, url, timeout=self._cfg.request_timeout_seconds, stream=True, **kwargs)
            _read_capped(response, url)
        except requests.RequestException as exc:
            if self._on_request:
                self._on_request(endpoint, 0, None)
            raise HelixError(f"cannot reach Twitch at {_origin(url)}: {_short(exc)}") from None
        except HelixError:
            if self._on_request:
                self._on_request(endpoint, 0, None)
            raise
        if self._on_request:
            remaining = response.headers.get("Ratelimit-Remaining")
            self._on_request(endpoint, response.status_code,
                             int(remaining) if remaining and remaining.isdigit() else None)
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
        """Take one point of the bucket as last reported; while it is empty, no thread sends until Reset."""
        waited = False
        while True:
            with self._lock:
                now = self._clock()
                if self._remaining is None or self._remaining > 0:
                    if self._remaining is not None:
                        self._remaining -= 1  # spoken for: other threads see the bucket drain too
                    return
                if now >= self._reset_at or waited:
                    # Assume the bucket refilled at Reset; the next answer corrects us.
                    self._remaining = None
                    return
                wait = min(self._reset_at - now, MAX_RATELIMIT_WAIT_SECONDS)
            log.info("helix: rate-limit bucket empty; waiting %.1fs for Ratelimit-Reset", wait)
            self._sleep(wait)
            waited = wait >= MAX_RATELIMIT_WAIT_SECONDS

    # -- pagination and typed helpers ------------------------------------------

    def paginate(
        self, endpoint: str, params: Mapping[str, Any], limit: int, key: str = "id", page_size: int = MAX_PAGE_SIZE,
        parse: Callable[[Any], object] | None = None,
    ) -> Iterator[dict]:
        """Yield up to `limit` distinct items (by `key`) across cursor pages.

        With `parse`, an item it rejects (ValueError, TypeError) is dropped before it counts towards
        `limit`, and the listing logs one line for all it dropped.
        """
        dropped = _Dropped(endpoint)
        try:
            yield from self._pages(endpoint, params, limit, key, page_size, parse, dropped)
        finally:
            dropped.log()

    def _pages(
        self, endpoint: str, params: Mapping[str, Any], limit: int, key: str, page_size: int,
        parse: Callable[[Any], object] | None, dropped: _Dropped,
    ) -> Iterator[dict]:
        seen: set[str] = set()
        cursors: set[str] = set()
        cursor: str | None = None
        for _ in range(self._cfg.max_pages):
            page_params = dict(params)
            page_params["first"] = min(page_size, MAX_PAGE_SIZE, max(1, limit - len(seen)))
            if cursor:
                page_params["after"] = cursor
            body = self.get(endpoint, page_params)
            for item in _data(body, endpoint):
                if parse is not None and not dropped.parses(parse, item):
                    continue
                item_key = str(item.get(key))
                if item_key in seen:
                    continue  # listings shift while paged: a stream can repeat
                seen.add(item_key)
                yield item
                if len(seen) >= limit:
                    return
            pagination = body.get("pagination")
            cursor = pagination.get("cursor") if isinstance(pagination, dict) else None
            if not cursor:
                return
            if not isinstance(cursor, str) or len(cursor) > _MAX_TEXT:
                log.warning("helix %s: a cursor that is not a short string; stopping the listing", endpoint)
                return
            if cursor in cursors:
                log.warning("helix %s: the cursor loops back to a page already read; stopping the listing",
                            endpoint)
                return
            cursors.add(cursor)

    def top_streams(self, game_id: str, limit: int) -> list[Stream]:
        """Return the top `limit` live streams of a category, by viewers."""
        items = self.paginate("streams", {"game_id": game_id, "type": "live"}, limit, parse=Stream.from_json)
        return [Stream.from_json(item) for item in items]

    def stream_of(self, login: str) -> Stream | None:
        """Return the live stream of a channel, or None when it is offline."""
        items = _data(self.get("streams", {"user_login": login, "type": "live"}), "streams")
        streams = [s for s in _parsed(items, Stream.from_json, "streams") if s.user_login == login]
        return streams[0] if streams else None

    def user(self, login: str) -> dict | None:
        """Return the Helix user record of a login, or None when there is none."""
        items = _parsed(_data(self.get("users", {"login": login}), "users"), _user, "users")
        return items[0] if items else None

    def game_names(self, game_ids: list[str]) -> dict[str, str]:
        """Return {id: name} for the categories that exist among game_ids."""
        names: dict[str, str] = {}
        for start in range(0, len(game_ids), MAX_PAGE_SIZE):
            chunk = game_ids[start : start + MAX_PAGE_SIZE]
            body = self.get("games", [("id", gid) for gid in chunk])
            names.update(dict(_parsed(_data(body, "games"), _game, "games")))
        return names

    def top_games(self, limit: int) -> list[Game]:
        """Return Twitch's `limit` most watched categories now, most viewers first (Get Top Games)."""
        items = self.paginate("games/top", {}, limit, parse=Game.from_json)
        return [Game.from_json(item) for item in items]

    def clips(
        self, broadcaster_id: str, limit: int, started_at: str | None = None, ended_at: str | None = None
    ) -> list[dict]:
        """Return a channel's top clips, optionally inside a creation window (RFC 3339)."""
        params: dict[str, Any] = {"broadcaster_id": broadcaster_id}
        if started_at:
            params["started_at"] = started_at
        if ended_at:
            params["ended_at"] = ended_at
        return list(self.paginate("clips", params, limit, parse=_clip))


CLIP_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,100}")


def _id(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise ValueError(f"{key} is not a Twitch id")
    return value


def _text(item: Mapping[str, Any], key: str, default: str) -> str:
    value = item.get(key, default)
    if value is None:
        return default
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise ValueError(f"{key} is not a short string")
    return value


def _user(item: Any) -> dict:
    if not isinstance(item, Mapping):
        raise ValueError("item is not an object")
    _id(item, "id")
    if not valid_login(item.get("login")):
        raise ValueError("login is not a Twitch login")
    _text(item, "display_name", "")
    return dict(item)


@dataclass(frozen=True)
class Game:
    """A category as Get Games and Get Top Games give it."""

    id: str
    name: str
    igdb_id: str  # empty for a category that is no game (Just Chatting, Music, Art)

    @property
    def is_game(self) -> bool:
        return bool(self.igdb_id)

    @classmethod
    def from_json(cls, item: Any) -> Game:
        game_id, name = _game(item)
        return cls(game_id, name, _text(item, "igdb_id", ""))


def _game(item: Any) -> tuple[str, str]:
    if not isinstance(item, Mapping):
        raise ValueError("item is not an object")
    name = _text(item, "name", "")
    if not name:
        raise ValueError("name is empty")
    return _id(item, "id"), name


def _clip(item: Any) -> dict:
    if not isinstance(item, Mapping):
        raise ValueError("item is not an object")
    clip_id = item.get("id")
    if not isinstance(clip_id, str) or not CLIP_ID_RE.fullmatch(clip_id):
        raise ValueError("id is not a clip id")
    url = _text(item, "url", "")
    if not url.startswith(("http://", "https://")):
        raise ValueError("url is not an http(s) URL")
    game_id = _text(item, "game_id", "")
    if game_id and not _ID_RE.fullmatch(game_id):
        raise ValueError("game_id is not a Twitch id")
    _text(item, "created_at", "")
    return dict(item)


def _data(body: dict, endpoint: str) -> list:
    data = body.get("data", [])
    if not isinstance(data, list):
        raise HelixError(f"Helix {endpoint} answered with a 'data' that is not a list")
    return data


class _Dropped:
    """Count the items of one listing that did not parse; log them as one line."""

    def __init__(self, endpoint: str):
        self.endpoint, self.count, self.first = endpoint, 0, ""

    def parses(self, parse: Callable[[Any], object], item: Any) -> bool:
        try:
            parse(item)
        except (ValueError, TypeError) as exc:
            self.count += 1
            self.first = self.first or str(exc)
            return False
        return True

    def log(self) -> None:
        if self.count:
            log.warning("helix %s: dropped %d invalid item(s) (first: %s)", self.endpoint, self.count, self.first)


def _parsed(items: Iterable[Any], parse: Callable[[Any], T], endpoint: str) -> list[T]:
    """Parse each item, dropping those that do not parse with one log line for the lot."""
    dropped = _Dropped(endpoint)
    out = [parse(item) for item in items if dropped.parses(parse, item)]
    dropped.log()
    return out


def _read_capped(response: requests.Response, url: str) -> None:
    """Read the body, refusing one larger than MAX_BODY_BYTES (the connection is dropped, not drained)."""
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        response.close()
        raise HelixError(f"{_origin(url)} answered with a body of {int(declared)} bytes; "
                         f"more than {MAX_BODY_BYTES} is refused", status=response.status_code)
    chunks, size = [], 0
    for chunk in response.iter_content(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            response.close()
            # A status: the server answered, so this is not retried as a dropped connection would be.
            raise HelixError(f"{_origin(url)} answered with a body over {MAX_BODY_BYTES} bytes; refused",
                             status=response.status_code)
        chunks.append(chunk)
    response._content = b"".join(chunks)  # what response.json() and .text read
    response.close()


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
