"""Route the stand-in's HTTP requests: OAuth, Helix, HLS playlists and segments, JPEG images.

    httpd = HttpServer(("127.0.0.1", 0), RequestHandler)
    httpd.standin = sim          # the StandIn whose state every request reads

    POST /oauth2/token, POST /oauth2/revoke, GET /oauth2/validate
    GET  /helix/games, /helix/games/top, /helix/streams, /helix/clips, /helix/users
    GET  /live/<login>/index.m3u8 -> <variant>/index.m3u8 (live window) -> <variant>/<n>.ts
    GET  /clips/<id>/index.m3u8 -> <variant>/index.m3u8 (VOD) -> <variant>/<k>.ts
    GET  /previews/live_user_<login>-<W>x<H>.jpg, /clips/<id>/preview-<W>x<H>.jpg,
         /boxart/<id>-<W>x<H>.jpg, /avatars/<login>-<W>x<H>.jpg

The handler only parses, checks and writes; what to answer comes from the
StandIn (world, tokens, rate limiter, Helix API, segment store).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

import numpy as np
from PIL import Image

from monitor.sim import hls
from monitor.sim.auth import OAuthFailure
from monitor.sim.encode import VARIANTS
from monitor.sim.helix import error_body

if TYPE_CHECKING:
    from monitor.sim.server import StandIn

log = logging.getLogger(__name__)

M3U8 = "application/vnd.apple.mpegurl"
_IMAGE = re.compile(r"-(\d{1,4})x(\d{1,4})\.jpg$")


def jpeg(picture: np.ndarray | bytes, width: int, height: int) -> bytes:
    """Encode a picture (RGB array or JPEG bytes) as a JPEG of exactly width x height."""
    image = Image.open(io.BytesIO(picture)) if isinstance(picture, bytes) else Image.fromarray(picture)
    if image.size != (width, height):
        image = image.resize((width, height), Image.BILINEAR)
    buf = io.BytesIO()
    image.convert("RGB").save(buf, "JPEG", quality=85)
    return buf.getvalue()


class HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64
    standin: StandIn

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]):
        super().__init__(address, handler)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def server_close(self) -> None:
        """Close the listener and every kept-alive connection, so nothing answers after close."""
        super().server_close()
        with self._open_lock:
            conns, self._open = list(self._open), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle kept-alive connections are dropped after this
    disable_nagle_algorithm = True  # headers and body go out as two writes: Nagle would hold the body 40 ms
    server: HttpServer

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        sim = self.server.standin
        parts = urlsplit(self.path)
        path = parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        sim.counters._path(path)
        length = int(self.headers.get("Content-Length") or 0)
        form = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        try:
            if path.startswith("/oauth2/"):
                self._oauth(sim, method, path, query, parse_qs(form))
            elif method != "GET":
                self._send(405, b"", "text/plain")
            elif path.startswith("/helix/"):
                self._helix(sim, path, query)
            else:
                self._media(sim, path)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception:
            log.exception("stand-in failed on %s", self.path)
            self._send(500, b'{"error":"Internal Server Error","status":500,"message":""}', "application/json")

    # -- OAuth ------------------------------------------------------------------------------------
    def _oauth(self, sim: StandIn, method: str, path: str, query: dict[str, list[str]],
               form: dict[str, list[str]]) -> None:
        params = {k: v[0] for k, v in query.items()}
        params.update({k: v[0] for k, v in form.items()})
        try:
            if path == "/oauth2/token" and method == "POST":
                if sim.token_endpoint_down:
                    self._json(503, {"status": 503, "message": "Service Unavailable"})
                    return
                body: dict = sim.tokens.grant(params)
                sim.counters._token()
            elif path == "/oauth2/validate" and method == "GET":
                body = sim.tokens.validate(self.headers.get("Authorization", ""))
            elif path == "/oauth2/revoke" and method == "POST":
                sim.tokens.revoke(params)
                self._send(200, b"", "text/plain")
                return
            else:
                self._json(404, {"status": 404, "message": "Not Found"})
                return
        except OAuthFailure as exc:
            self._json(exc.status, exc.body)
            return
        self._json(200, body)

    # -- Helix ------------------------------------------------------------------------------------
    def _helix(self, sim: StandIn, path: str, query: dict[str, list[str]]) -> None:
        client_id = self.headers.get("Client-Id", "")
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        problem = None
        if scheme.lower() != "bearer" or not token.strip():
            problem = "OAuth token is missing"
        elif not client_id:
            problem = "Client ID is missing"
        else:
            record = sim.tokens.lookup(token.strip())
            if record is None:
                problem = "Invalid OAuth token"
            elif record.client_id != client_id:
                problem = "Client ID and OAuth token do not match"
        if problem is not None:
            allowance = sim.limiter.peek(client_id or "anonymous")
            self._json(401, error_body(401, problem), {
                **allowance.headers(), "WWW-Authenticate": 'OAuth realm="TwitchTV", error="invalid_token"'})
            return
        allowance = sim.limiter.take(client_id)
        if not allowance.allowed:
            self._json(429, error_body(429, "Too Many Requests"), allowance.headers())
            return
        status, body = sim.helix.get(path, query)
        fault = sim.take_helix_fault(path.removeprefix("/helix/").rstrip("/"))
        if fault:
            self._helix_fault(fault, status, body, allowance.headers())
            return
        self._json(status, body, allowance.headers())

    def _helix_fault(self, fault: str, status: int, body: dict, headers: dict[str, str]) -> None:
        """Answer with one of server.HELIX_FAULTS in place of the real answer."""
        if fault in ("500", "503"):
            self._json(int(fault), {"error": "Internal Server Error", "status": int(fault), "message": ""}, headers)
        elif fault == "reset":
            # SO_LINGER 0: close() sends a RST, as a dropped connection does.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
        elif fault == "huge":
            # No Content-Length: the reader only learns the size by reading (50 MB, unless it stops).
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            self.wfile.write(b'{"data": [{"id": "' )
            chunk = b"9" * (1 << 20)
            for _ in range(50):
                self.wfile.write(chunk)
            self.wfile.write(b'"}], "pagination": {}}')
        elif fault == "not_json":
            self._send(200, b"<html><body>upstream hiccup</body></html>", "application/json", headers=headers)
        else:
            items = body.get("data") or []
            if items:
                items[0] = dict(items[0])
                if fault == "wrong_types":
                    items[0]["viewer_count"] = "lots"
                else:  # the field a path is built from: a stream's or user's login, a clip's id
                    key = next(k for k in ("user_login", "login", "broadcaster_id", "id") if k in items[0])
                    items[0]["id" if key == "broadcaster_id" else key] = "../../etc"
            self._json(status, body, headers)

    # -- video and images -------------------------------------------------------------------------
    def _media(self, sim: StandIn, path: str) -> None:
        parts = path.strip("/").split("/")
        if parts[0] == "live" and len(parts) in (3, 4):
            self._live(sim, parts[1:])
        elif parts[0] == "clips" and len(parts) in (3, 4):
            self._clip(sim, parts[1:])
        elif parts[0] in ("previews", "boxart", "avatars") and len(parts) == 2:
            self._picture(sim, parts[0], parts[1])
        else:
            self._send(404, b"Not Found", "text/plain")

    def _live(self, sim: StandIn, parts: list[str]) -> None:
        login = parts[0]
        if sim.scenario.channel(login) is None or not sim.world.state(login).live:
            body = [{"url": f"/live/{login}", "error": "Can not find channel", "error_code": "does_not_exist"}]
            self._json(404, body)
            return
        if parts[1:] == ["index.m3u8"] and sim.single_variant(login):
            # The 360p media playlist itself, its segment URIs under 360p/.
            last = sim.world.live_edge(login)
            window = sim.scenario.live_window_segments
            text = hls.live_media(last - window + 1, last, sim.scenario.segment_seconds, sim.world.clock())
            text = text.replace(",live\n", ",live\n360p/")
            self._send(200, text.encode(), M3U8, cache=False)
            return
        if parts[1:] == ["index.m3u8"]:
            self._send(200, hls.multivariant(VARIANTS.values(), sim.scenario.fps).encode(), M3U8)
            return
        variant, name = parts[1], parts[-1]
        if variant not in VARIANTS or len(parts) != 3:
            self._send(404, b"Not Found", "text/plain")
            return
        last = sim.world.live_edge(login)
        window = sim.scenario.live_window_segments
        if name == "index.m3u8":
            text = hls.live_media(last - window + 1, last, sim.scenario.segment_seconds, sim.world.clock())
            self._send(200, text.encode(), M3U8, cache=False)
            return
        sequence = _number(name, ".ts")
        # Segments stay fetchable a while after they leave the window, as on a CDN.
        if sequence is None or not last - 2 * window < sequence <= last:
            self._send(404, b"Not Found", "text/plain")
            return
        data = sim.live_segment(login, variant, sequence)
        sim.counters._add("_bytes", (login, variant), len(data))
        self._send(200, data, "video/mp2t")

    def _clip(self, sim: StandIn, parts: list[str]) -> None:
        clip_id = parts[0]
        if clip_id not in sim.world.clips:
            self._send(404, b"Not Found", "text/plain")
            return
        if len(parts) == 2:
            if parts[1] == "index.m3u8":
                self._send(200, hls.multivariant(VARIANTS.values(), sim.scenario.fps).encode(), M3U8)
            elif _IMAGE.search(parts[1]) and parts[1].startswith("preview-"):
                self._picture(sim, "clip", f"{clip_id}-{parts[1].split('-', 1)[1]}")
            else:
                self._send(404, b"Not Found", "text/plain")
            return
        variant, name = parts[1], parts[2]
        count = sim.scenario.clip_segments
        if variant not in VARIANTS:
            self._send(404, b"Not Found", "text/plain")
        elif name == "index.m3u8":
            self._send(200, hls.vod_media(count, sim.scenario.segment_seconds).encode(), M3U8)
        elif (index := _number(name, ".ts")) is not None and 0 <= index < count:
            data = sim.clip_segment(clip_id, variant, index)
            sim.counters._add("_clip_bytes", (clip_id, variant), len(data))
            self._send(200, data, "video/mp2t")
        else:
            self._send(404, b"Not Found", "text/plain")

    def _picture(self, sim: StandIn, kind: str, name: str) -> None:
        match = _IMAGE.search(name)
        key = name[: match.start()] if match else ""
        if kind == "previews":
            key = key.removeprefix("live_user_")
        width, height = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
        if not (1 <= width <= 1920 and 1 <= height <= 1080):
            self._send(404, b"Not Found", "text/plain")
            return
        if kind == "previews":
            if sim.scenario.channel(key) is None or not sim.world.state(key).live:
                self._send(404, b"Not Found", "text/plain")
                return
            self._send(200, jpeg(sim.live_still(key), width, height), "image/jpeg", cache=False)
            return
        if kind == "clip":
            clip = sim.world.clips[key]
            rgb: np.ndarray | bytes | None = sim.store.still(
                sim.scenario.channel(clip.login), f"clip-{clip.index}", 0)  # type: ignore[arg-type]
        else:
            rgb = sim.image(kind, key)
        if rgb is None:
            self._send(404, b"Not Found", "text/plain")
            return
        self._send(200, jpeg(rgb, width, height), "image/jpeg")

    # -- plumbing ---------------------------------------------------------------------------------
    def _json(self, status: int, body: object, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", headers=headers)

    def _send(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None,
              cache: bool = True) -> None:
        self.server.standin.counters._status(urlsplit(self.path).path, status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        if not cache:
            self.send_header("Cache-Control", "no-cache")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


def _number(name: str, suffix: str) -> int | None:
    stem = name.removesuffix(suffix)
    return int(stem) if name.endswith(suffix) and stem.isdigit() else None
