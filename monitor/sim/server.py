"""Run the stand-in: a Twitch on 127.0.0.1 with faults a test can switch on.

    with StandIn(small_scenario(), cache_dir=tmp) as sim:
        requests.post(sim.auth_url + "/token", params={...})
        streamlink.Streamlink().streams(sim.stream_url.format(user_login="pixelfoxtv"))
        sim.set_offline("pixelfoxtv", True)     # faults take effect on the next request

StandIn ties the world state, tokens, rate limiter, Helix API and segment
store to an HTTP server; monitor/sim/routes.py maps URLs onto them.
"""

from __future__ import annotations

import os
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from monitor.sim import transport
from monitor.sim.auth import RateLimiter, TokenStore
from monitor.sim.camera import CameraScene
from monitor.sim.encode import TICKS, SegmentStore
from monitor.sim.game import game_frames
from monitor.sim.helix import PAGINATION_FAULTS, HelixApi
from monitor.sim.routes import HttpServer, RequestHandler
from monitor.sim.scenario import Scenario, Truth
from monitor.sim.world import World

DEFAULT_CLIENT_ID = "standinclient0twitchwatch00000"
DEFAULT_CLIENT_SECRET = "standinsecret0twitchwatch00000"
# What set_helix_fault makes an answer do: an HTTP 500 or 503, a connection reset with no answer,
# a 50 MB body, a body that is not JSON, a number given as a string, a login that walks out of a directory.
HELIX_FAULTS = ("500", "503", "reset", "huge", "not_json", "wrong_types", "hostile_login")
# What set_segment_fault does to each live segment of a channel.
SEGMENT_FAULTS = ("truncated", "empty", "long")
THUMBNAIL_EVERY = 6  # segments between thumbnail refreshes
PTS_BASE = 10 * TICKS  # streams do not start their clock at zero; neither do we


def default_cache_dir() -> Path:
    """Return $XDG_CACHE_HOME/twitchwatch/standin, else ~/.cache/twitchwatch/standin."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "twitchwatch" / "standin"


class Counters:
    """What the stand-in has served, for tests and benchmarks; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bytes: Counter[tuple[str, str]] = Counter()
        self._clip_bytes: Counter[tuple[str, str]] = Counter()
        self._paths: Counter[str] = Counter()
        self._tokens = 0
        self._statuses: Counter[tuple[str, int]] = Counter()

    def answers(self, path_prefix: str, status: int) -> int:
        """Return how many answers with that HTTP status went to paths starting with path_prefix."""
        with self._lock:
            return sum(n for (path, code), n in self._statuses.items()
                       if code == status and path.startswith(path_prefix))

    def bytes_served(self, login: str, variant: str) -> int:
        """Return bytes of live media segments served for a channel variant ("360p", "720p")."""
        with self._lock:
            return self._bytes[(login, variant)]

    def clip_bytes_served(self, clip_id: str, variant: str) -> int:
        """Return bytes of a clip's media segments served in a variant."""
        with self._lock:
            return self._clip_bytes[(clip_id, variant)]

    def requests(self, path_prefix: str) -> int:
        """Return how many requests had a path starting with path_prefix (e.g. "/helix/streams")."""
        with self._lock:
            return sum(n for path, n in self._paths.items() if path.startswith(path_prefix))

    @property
    def tokens_issued(self) -> int:
        with self._lock:
            return self._tokens

    def _add(self, counter: str, key: tuple[str, str], n: int) -> None:
        with self._lock:
            getattr(self, counter)[key] += n

    def _path(self, path: str) -> None:
        with self._lock:
            self._paths[path] += 1

    def _status(self, path: str, status: int) -> None:
        with self._lock:
            self._statuses[(path, status)] += 1

    def _token(self) -> None:
        with self._lock:
            self._tokens += 1


class StandIn:
    """The local Twitch: start it, point the [twitch] config at it, inject faults."""

    def __init__(self, scenario: Scenario, cache_dir: Path | None = None, port: int = 0,
                 token_ttl_seconds: float = 3600.0, bucket_size: int = 800,
                 bucket_refill_per_second: float = 800 / 60, *, client_id: str = DEFAULT_CLIENT_ID,
                 client_secret: str = DEFAULT_CLIENT_SECRET, clock: Callable[[], float] = time.time):
        self.scenario = scenario
        self.client_id, self.client_secret = client_id, client_secret
        self.world = World(scenario, clock)
        self.tokens = TokenStore(token_ttl_seconds, clock)
        self.tokens.register(client_id, client_secret)
        self.limiter = RateLimiter(bucket_size, bucket_refill_per_second, clock)
        self.store = SegmentStore(scenario, Path(cache_dir) if cache_dir else default_cache_dir())
        self.counters = Counters()
        self._httpd = HttpServer(("127.0.0.1", port), RequestHandler)
        self._httpd.standin = self
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self.helix_url = self.url + "/helix"
        self.auth_url = self.url + "/oauth2"
        self.stream_url = self.url + "/live/{user_login}/index.m3u8"
        self.helix = HelixApi(self.world, self.url)
        self._thread: threading.Thread | None = None
        self._faults_lock = threading.Lock()
        self._token_down = False
        self._helix_faults: dict[str, tuple[str, int | None]] = {}  # endpoint -> (kind, answers left)
        self._segment_faults: dict[str, str] = {}  # login -> one of SEGMENT_FAULTS
        self._single_variant: set[str] = set()

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> StandIn:
        """Serve in a background thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="standin", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def twitch_config(self) -> dict[str, str]:
        """Return the [twitch] config section that points twitchwatch at this stand-in."""
        return {"client_id": self.client_id, "client_secret": self.client_secret, "helix_url": self.helix_url,
                "auth_url": self.auth_url, "stream_url": self.stream_url}

    def register_client(self, client_id: str, client_secret: str) -> None:
        """Accept another app's credentials (each client id gets its own rate-limit bucket)."""
        self.tokens.register(client_id, client_secret)

    def truth(self, login: str) -> Truth:
        """Return what a channel declares now (after set_game), what it shows, and whether they differ."""
        shown = self.scenario.truth(login).shown_game_id
        declared = self.world.state(login).declared_game_id
        return Truth(declared, shown, shown != declared)

    # -- faults -----------------------------------------------------------------------------------
    def expire_tokens(self) -> None:
        """Make every token issued so far answer 401."""
        self.tokens.expire_all()

    def revoke_tokens(self) -> None:
        """Revoke every token issued so far (as a user or Twitch does): they answer 401 from now on."""
        self.tokens.expire_all()

    def set_token_endpoint_down(self, down: bool = True) -> None:
        """Make POST /oauth2/token answer 503 (down) or work again."""
        with self._faults_lock:
            self._token_down = down

    @property
    def token_endpoint_down(self) -> bool:
        with self._faults_lock:
            return self._token_down

    def set_helix_fault(self, kind: str, endpoint: str = "streams", times: int | None = None) -> None:
        """Make Helix /<endpoint> answer with a fault (HELIX_FAULTS), `times` times or until cleared with ""."""
        if kind and kind not in HELIX_FAULTS:
            raise ValueError(f"unknown Helix fault {kind!r}; expected one of {', '.join(HELIX_FAULTS)}")
        with self._faults_lock:
            if kind:
                self._helix_faults[endpoint] = (kind, times)
            else:
                self._helix_faults.pop(endpoint, None)

    def take_helix_fault(self, endpoint: str) -> str:
        """Return the fault the next answer of an endpoint carries ("" for none), counting it off."""
        with self._faults_lock:
            kind, left = self._helix_faults.get(endpoint, ("", None))
            if kind and left is not None:
                if left <= 1:
                    del self._helix_faults[endpoint]
                else:
                    self._helix_faults[endpoint] = (kind, left - 1)
            return kind

    def set_segment_fault(self, login: str, kind: str) -> None:
        """Serve a channel's live segments "truncated" (cut mid-packet), "empty" (0 bytes) or "long" (8 segments
        of video in one), or as they are ("")."""
        if kind and kind not in SEGMENT_FAULTS:
            raise ValueError(f"unknown segment fault {kind!r}; expected one of {', '.join(SEGMENT_FAULTS)}")
        with self._faults_lock:
            if kind:
                self._segment_faults[self._known(login)] = kind
            else:
                self._segment_faults.pop(login, None)

    def segment_fault(self, login: str) -> str:
        with self._faults_lock:
            return self._segment_faults.get(login, "")

    def set_single_variant(self, login: str, on: bool = True) -> None:
        """Serve a channel's index.m3u8 as one media playlist, no variants: streamlink offers only `best`."""
        with self._faults_lock:
            (self._single_variant.add if on else self._single_variant.discard)(self._known(login))

    def single_variant(self, login: str) -> bool:
        with self._faults_lock:
            return login in self._single_variant

    def set_pagination_fault(self, kind: str) -> None:
        """Make /streams pages misbehave: "overlap", "repeat", "empty", "loop" (see sim.helix._paginate), "" off."""
        if kind not in PAGINATION_FAULTS:
            raise ValueError(f"unknown pagination fault {kind!r}")
        self.world.set_pagination_fault(kind)

    def drain_bucket(self, reset_in: float = 2.0) -> None:
        """Empty every client's rate-limit bucket until now + reset_in, when it refills."""
        self.limiter.drain(reset_in)

    def set_offline(self, login: str, offline: bool = True) -> None:
        """Take a channel off the air (gone from /streams, playlists 404) or bring it back."""
        self.world.set_offline(self._known(login), offline)

    def set_corrupt(self, login: str, fraction: float = 0.5) -> None:
        """Garble that fraction of the TS packets of every segment served for a channel and its clips (0 = off)."""
        self.world.set_corrupt(self._known(login), fraction)

    def set_ad_break(self, login: str, seconds: float) -> None:
        """Freeze a channel's media playlists for that long, as a mid-roll ad does to a reader."""
        self.world.set_ad_break(self._known(login), seconds)

    def set_duplicate_pagination(self, on: bool = True) -> None:
        """Make each /streams page start with the previous page's last stream."""
        self.world.set_duplicate_pagination(on)

    def set_game(self, login: str, game_id: str) -> None:
        """Change the category a channel declares (its video does not change)."""
        self.world.set_game(self._known(login), game_id)

    def _known(self, login: str) -> str:
        if self.scenario.channel(login) is None:
            raise ValueError(f"no channel {login!r} in the scenario")
        return login

    # -- media ------------------------------------------------------------------------------------
    def live_segment(self, login: str, variant: str, sequence: int) -> bytes:
        """Return segment `sequence` of a live channel as served: looped, re-timed, maybe garbled."""
        channel = self.scenario.channel(login)
        loop = self.scenario.live_loop_segments
        index = sequence % loop
        data = self.store.segment(channel, "live", variant, index)  # type: ignore[arg-type]
        offset = PTS_BASE + (sequence - index) * self.scenario.segment_seconds * TICKS
        fault = self.segment_fault(login)
        if fault == "empty":
            return b""
        if fault == "long":
            step = self.scenario.segment_seconds * TICKS
            data = b"".join(transport.shift_timestamps(data, offset + k * step) for k in range(8))
        else:
            data = transport.shift_timestamps(data, offset)
        if fault == "truncated":
            data = data[: len(data) * 2 // 5 + 77]  # cut inside a packet, as a dropped transfer does
        fraction = self.world.state(login).corrupt
        if not fraction:
            return data
        return transport.garble(data, fraction, seed=zlib.crc32(f"{login}/{variant}/{sequence}".encode()))

    def clip_segment(self, clip_id: str, variant: str, index: int) -> bytes:
        clip = self.world.clips[clip_id]
        channel = self.scenario.channel(clip.login)
        data = self.store.segment(channel, f"clip-{clip.index}", variant, index)  # type: ignore[arg-type]
        data = transport.shift_timestamps(data, PTS_BASE)
        # The corrupt-segment fault covers a channel's clips too: a dataset build must survive it.
        fraction = self.world.state(clip.login).corrupt
        if not fraction:
            return data
        return transport.garble(data, fraction, seed=zlib.crc32(f"{clip_id}/{variant}/{index}".encode()))

    def live_still(self, login: str) -> bytes:
        """Return a live channel's thumbnail picture as a JPEG: a frame at most 12 s behind its edge.

        Twitch's previews lag by minutes; refreshing ours every THUMBNAIL_EVERY
        segments bounds them to a few stills per channel, rendered together once.
        """
        per, loop = self.scenario.frames_per_segment, self.scenario.live_loop_segments
        position = self.world.live_edge(login) % loop
        shown = position - position % THUMBNAIL_EVERY
        siblings = tuple(k * per for k in range(0, loop, THUMBNAIL_EVERY) if k != shown)
        return self.store.still(self.scenario.channel(login), "live", shown * per, siblings)  # type: ignore[arg-type]

    def image(self, kind: str, key: str) -> np.ndarray | None:
        """Return the picture behind box art or an avatar, or None if the key is unknown."""
        if kind == "boxart":
            category = self.scenario.category(key)
            if category is None:
                return None
            if category.rom is None:
                return CameraScene(int(key), 285, 380).frame(0)
            return game_frames(category.rom, 0, 1, self.scenario.fps, self.store.cache_dir)[0]
        channel = self.scenario.channel(key)
        return None if channel is None else CameraScene(channel.seed, 300, 300, zoom=1.4).frame(0)
