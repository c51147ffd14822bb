"""Answer Helix GET requests from the stand-in's world, in Twitch's JSON shapes.

    api = HelixApi(world, base_url="http://127.0.0.1:8000")
    status, body = api.get("/helix/streams", {"game_id": ["509658"], "first": ["20"]})

Covers /games, /games/top, /streams, /clips and /users with their filters,
`first` bounds, opaque `after` cursors ("invalid cursor" when one does not
decode) and `"pagination": {}` on the last page. Authentication and rate
limiting happen before this, in the server.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from monitor.sim.scenario import Category, Channel
from monitor.sim.world import ChannelState, Clip, World, iso

Query = dict[str, list[str]]
Answer = tuple[int, dict]


class BadRequest(Exception):
    """A 400 answer with Twitch's message."""


def error_body(status: int, message: str) -> dict:
    """Return Helix's error JSON for a status."""
    names = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests"}
    return {"error": names.get(status, "Error"), "status": status, "message": message}


class HelixApi:
    def __init__(self, world: World, base_url: str):
        self.world = world
        self.base = base_url
        self._routes: dict[str, Callable[[Query], dict]] = {
            "/helix/games": self.games, "/helix/games/top": self.top_games, "/helix/streams": self.streams,
            "/helix/clips": self.clips, "/helix/users": self.users,
        }

    def get(self, path: str, query: Query) -> Answer:
        """Answer one GET: (status, JSON body)."""
        route = self._routes.get(path.rstrip("/"))
        if route is None:
            return 404, error_body(404, "")
        try:
            return 200, route(query)
        except BadRequest as exc:
            return 400, error_body(400, str(exc))

    # -- endpoints --------------------------------------------------------------------------------
    def games(self, query: Query) -> dict:
        ids, names = query.get("id", []), query.get("name", [])
        if not ids and not names and not query.get("igdb_id"):
            raise BadRequest("Missing required parameter \"id\" or \"name\" or \"igdb_id\"")
        if len(ids) + len(names) > 100:
            raise BadRequest("The request exceeds the maximum of 100 id and name query parameters")
        lowered = {n.lower() for n in names}
        games = [c for c in self.world.scenario.categories if c.id in ids or c.name.lower() in lowered]
        return {"data": [self._game(c) for c in games]}

    def top_games(self, query: Query) -> dict:
        viewers: dict[str, int] = {}
        for channel, state in self.world.live_channels():
            viewers[state.declared_game_id] = viewers.get(state.declared_game_id, 0) + channel.viewer_count
        categories = sorted(self.world.scenario.categories, key=lambda c: (-viewers.get(c.id, 0), c.id))
        items = [self._game(c) for c in categories]
        return _paginate(items, query, "games/top", overlap=False)

    def streams(self, query: Query) -> dict:
        _limit(query, ("game_id", "user_id", "user_login", "language"), 100)
        stream_type = _single(query, "type", "all")
        if stream_type not in ("all", "live"):
            raise BadRequest("The parameter \"type\" was malformed: the value must be one of all, live")
        wanted = {key: set(query.get(key, [])) for key in ("game_id", "user_id", "user_login", "language")}
        rows = []
        for channel, state in self.world.live_channels():
            fields = {"game_id": state.declared_game_id, "user_id": channel.user_id,
                      "user_login": channel.login, "language": channel.language}
            if all(not wanted[k] or fields[k] in wanted[k] for k in wanted):
                rows.append((channel, state))
        rows.sort(key=lambda row: (-row[0].viewer_count, row[0].user_id))
        items = [self._stream(channel, state) for channel, state in rows]
        return _paginate(items, query, "streams", overlap=self.world.duplicate_pagination,
                         fault=self.world.pagination_fault)

    def clips(self, query: Query) -> dict:
        selectors = [key for key in ("broadcaster_id", "game_id", "id") if query.get(key)]
        if len(selectors) != 1:
            raise BadRequest("The request must specify exactly one of broadcaster_id, game_id or id")
        key = selectors[0]
        values = set(query[key])
        if key != "id" and len(values) > 1:
            raise BadRequest(f"The parameter \"{key}\" may be given only once")
        logins = {c.login: c for c in self.world.scenario.channels}
        window = _window(query)
        chosen = []
        for clip in self.world.clips.values():
            owner = logins[clip.login]
            value = {"broadcaster_id": owner.user_id, "game_id": clip.game_id, "id": clip.id}[key]
            if value in values and (window is None or window[0] <= clip.created_at < window[1]):
                chosen.append(clip)
        chosen.sort(key=lambda c: (-c.view_count, c.id))
        items = [self._clip(c, logins[c.login].user_id, logins[c.login].display_name) for c in chosen]
        if key == "id":
            return {"data": items}
        return _paginate(items, query, "clips", overlap=False)

    def users(self, query: Query) -> dict:
        ids, logins = query.get("id", []), [name.lower() for name in query.get("login", [])]
        if not ids and not logins:
            raise BadRequest("Must provide either a login or id parameter when using an app access token")
        if len(ids) + len(logins) > 100:
            raise BadRequest("The request exceeds the maximum of 100 id and login query parameters")
        data = [self._user(c) for c in self.world.scenario.channels if c.user_id in ids or c.login in logins]
        return {"data": data}

    # -- shapes -----------------------------------------------------------------------------------
    def _game(self, category: Category) -> dict:
        # Twitch gives games their IGDB id and leaves it empty for categories that are no game
        # (Just Chatting, Music, Art): the stand-in's ids are made up, the empty string is not.
        igdb_id = str(int(category.id) % 99_991 + 1) if category.kind == "game" and category.id.isdigit() else ""
        return {"id": category.id, "name": category.name,
                "box_art_url": f"{self.base}/boxart/{category.id}-{{width}}x{{height}}.jpg", "igdb_id": igdb_id}

    def _game_name(self, game_id: str) -> str:
        category = self.world.scenario.category(game_id)
        return category.name if category else ""

    def _stream(self, channel: Channel, state: ChannelState) -> dict:
        return {
            "id": self.world.stream_id(channel.login, state), "user_id": channel.user_id,
            "user_login": channel.login, "user_name": channel.display_name,
            "game_id": state.declared_game_id, "game_name": self._game_name(state.declared_game_id),
            "type": "live", "title": channel.title, "tags": [_LANGUAGES.get(channel.language, "English")],
            "viewer_count": channel.viewer_count, "started_at": iso(state.session_started),
            "language": channel.language,
            "thumbnail_url": f"{self.base}/previews/live_user_{channel.login}-{{width}}x{{height}}.jpg",
            "tag_ids": [], "is_mature": False,
        }

    def _clip(self, clip: Clip, broadcaster_id: str, broadcaster_name: str) -> dict:
        seconds = self.world.scenario.clip_segments * self.world.scenario.segment_seconds
        return {
            "id": clip.id, "url": f"{self.base}/clips/{clip.id}/index.m3u8",
            "embed_url": f"{self.base}/clips/embed?clip={clip.id}", "broadcaster_id": broadcaster_id,
            "broadcaster_name": broadcaster_name, "creator_id": clip.creator_id, "creator_name": clip.creator_name,
            "video_id": "", "game_id": clip.game_id, "language": self.world.channel(clip.login).language,
            "title": clip.title, "view_count": clip.view_count, "created_at": iso(clip.created_at),
            "thumbnail_url": f"{self.base}/clips/{clip.id}/preview-480x272.jpg", "duration": float(seconds),
            "vod_offset": None, "is_featured": clip.is_featured,
        }

    def _user(self, channel: Channel) -> dict:
        return {
            "id": channel.user_id, "login": channel.login, "display_name": channel.display_name, "type": "",
            "broadcaster_type": "partner" if channel.viewer_count > 5000 else "affiliate",
            "description": f"{channel.display_name} streams here.",
            "profile_image_url": f"{self.base}/avatars/{channel.login}-300x300.jpg", "offline_image_url": "",
            "view_count": 0, "created_at": iso(self.world.started - 86400 * (400 + channel.seed % 2000)),
        }


_LANGUAGES = {"en": "English", "de": "Deutsch", "es": "Español", "fr": "Français", "it": "Italiano"}


def encode_cursor(endpoint: str, offset: int, detour: bool = False) -> str:
    """Return an opaque cursor for position offset of an endpoint's listing (detour: a fault already served)."""
    after: dict = {"Offset": offset, "Endpoint": endpoint}
    if detour:
        after["Detour"] = 1
    raw = json.dumps({"b": None, "a": after}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(endpoint: str, cursor: str) -> int:
    """Return the offset in a cursor, or raise BadRequest("invalid cursor")."""
    return _decode(endpoint, cursor)[0]


def _decode(endpoint: str, cursor: str) -> tuple[int, bool]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        offset = data["a"]["Offset"]
        if data["a"]["Endpoint"] != endpoint or not isinstance(offset, int) or offset < 0:
            raise ValueError(cursor)
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise BadRequest("invalid cursor") from None
    return offset, bool(data["a"].get("Detour"))


PAGINATION_FAULTS = ("", "overlap", "repeat", "empty", "loop")


def _paginate(items: list[dict], query: Query, endpoint: str, overlap: bool, fault: str = "") -> dict:
    """Cut one page, with one of the pagination faults Twitch shows (PAGINATION_FAULTS).

    overlap: a page repeats the previous page's last item first; repeat: the
    second request serves the first page again; empty: the second request is
    an empty page whose cursor leads on; loop: the last page's cursor points
    back to the first page.
    """
    first = _first(query)
    start, detour = _decode(endpoint, query["after"][0]) if query.get("after", [""])[0] else (0, False)
    if (overlap or fault == "overlap") and start > 0:
        start -= 1
    if start > 0 and not detour and fault in ("repeat", "empty"):
        page = items[:first] if fault == "repeat" else []
        return {"data": page, "pagination": {"cursor": encode_cursor(endpoint, start, detour=True)}}
    page = items[start: start + first]
    end = start + len(page)
    if end < len(items):
        pagination = {"cursor": encode_cursor(endpoint, end)}
    elif fault == "loop" and start > 0:
        pagination = {"cursor": encode_cursor(endpoint, 0, detour=True)}
    else:
        pagination = {}
    return {"data": page, "pagination": pagination}


def _first(query: Query) -> int:
    raw = _single(query, "first", "20")
    try:
        first = int(raw)
    except ValueError:
        raise BadRequest("The parameter \"first\" was malformed: the value must be an integer") from None
    if not 1 <= first <= 100:
        raise BadRequest("The parameter \"first\" was malformed: the value must be between 1 and 100, inclusive")
    return first


def _single(query: Query, key: str, default: str) -> str:
    values = query.get(key, [])
    if len(values) > 1:
        raise BadRequest(f"The parameter \"{key}\" may be given only once")
    return values[0] if values else default


def _limit(query: Query, keys: Sequence[str], most: int) -> None:
    for key in keys:
        if len(query.get(key, [])) > most:
            raise BadRequest(f"The parameter \"{key}\" may be given at most {most} times")


def _window(query: Query) -> tuple[float, float] | None:
    """Return the [started_at, ended_at) window of a clips query; ended_at defaults to a week on."""
    started, ended = _single(query, "started_at", ""), _single(query, "ended_at", "")
    if not started:
        if ended:
            raise BadRequest("The parameter \"ended_at\" requires \"started_at\"")
        return None
    start = _parse_time(started, "started_at")
    end = _parse_time(ended, "ended_at") if ended else start + timedelta(days=7)
    return start.timestamp(), end.timestamp()


def _parse_time(text: str, key: str) -> datetime:
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"The parameter \"{key}\" was malformed: the value must be in RFC3339 format") from None
    if stamp.tzinfo is None:
        raise BadRequest(f"The parameter \"{key}\" was malformed: the value must be in RFC3339 format")
    return stamp
