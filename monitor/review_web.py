"""The review web page (`twitchwatch review serve`): open flags with their contact sheets, confirm or reject.

    server = ReviewServer(ReviewDesk(cfg), "127.0.0.1", 0)   # port 0: any free one; server.url
    threading.Thread(target=server.serve_forever).start()
    server.shutdown()

    GET  /                      open flags newest first, then queued checks; plain HTML forms, no script
    GET  /sheet/<clip_id>.png   a queued clip's contact sheet
    POST /review                id, label (a category id, gameplay or ok), csrf; 303 back to /

It binds 127.0.0.1 unless told otherwise: it has no login, so whoever can
reach it can give verdicts. Every string from Helix (logins, category names)
and from the clips' records is HTML-escaped; a channel link is made only of
a valid login. Each server run draws a CSRF token, embedded in its forms; a
POST without it, or with another, is refused (403) before anything is read
or changed, so a page elsewhere cannot make the reviewer's browser give
verdicts. After a POST the browser is sent back to the page
(POST-redirect-GET), so a reload never posts twice.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import signal
import threading
from html import escape
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from monitor.config import Config
from monitor.errors import ReviewError, TwitchwatchError
from monitor.review import CLIP_ID_RE, OK, ReviewDesk
from monitor.verdict import GAMEPLAY

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9465  # beside the metrics' 9464
MAX_FORM_BYTES = 4096
SECURITY_HEADERS = {
    # Nothing runs and nothing loads from elsewhere, even if an escape were missed.
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
STYLE = """
body { font-family: sans-serif; margin: 1.5em; background: #f6f6f8; color: #222; }
article { background: #fff; border: 1px solid #ccc; border-radius: 6px; padding: 0.8em 1em; margin: 1em 0; }
img { max-width: 100%; display: block; margin: 0.5em 0; }
button { margin-right: 0.6em; padding: 0.3em 0.8em; }
.notice { background: #e8f4e8; border: 1px solid #8c8; padding: 0.5em 1em; }
"""


class ReviewServer(ThreadingHTTPServer):
    """The review page over one ReviewDesk, with this run's CSRF token."""

    daemon_threads = True

    def __init__(self, desk: ReviewDesk, host: str, port: int):
        self.desk = desk
        self.csrf_token = secrets.token_urlsafe(32)
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


def serve(cfg: Config, host: str, port: int) -> int:
    """Serve the review page until SIGTERM or Ctrl-C; print its URL first."""
    desk = ReviewDesk(cfg)
    try:
        server = ReviewServer(desk, host, port)
    except OSError as exc:
        desk.close()
        raise TwitchwatchError(f"cannot serve the review page on {host}:{port}: {exc.strerror or exc}") from None
    # SIGTERM stops it as Ctrl-C does; shutdown() must come from another thread than serve_forever's.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    print(f"review page at {server.url} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        desk.close()
    return 0


class _Handler(BaseHTTPRequestHandler):
    server: ReviewServer
    server_version = "twitchwatch-review"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        log.info("%s %s", self.address_string(), format % args)

    # -- GET -----------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        url = urlsplit(self.path)
        try:
            if url.path == "/":
                self._send(HTTPStatus.OK, _page(self.server.desk.queue(), self.server.csrf_token,
                                                parse_qs(url.query)))
            elif url.path.startswith("/sheet/") and url.path.endswith(".png"):
                self._sheet(url.path.removeprefix("/sheet/").removesuffix(".png"))
            else:
                self._send(HTTPStatus.NOT_FOUND, _message_page("Not found", "No such page."))
        except TwitchwatchError as exc:
            self._send(HTTPStatus.SERVICE_UNAVAILABLE, _message_page("Review unavailable", str(exc)))

    def _sheet(self, clip_id: str) -> None:
        if not CLIP_ID_RE.fullmatch(clip_id):
            self._send(HTTPStatus.NOT_FOUND, _message_page("Not found", "No such contact sheet."))
            return
        try:
            data = self.server.desk.sheet(clip_id).read_bytes()
        except (ReviewError, OSError):
            self._send(HTTPStatus.NOT_FOUND, _message_page("Not found", "No such contact sheet (reviewed or evicted)."))
            return
        self._send(HTTPStatus.OK, data, "image/png")

    # -- POST ----------------------------------------------------------------

    def do_POST(self) -> None:  # noqa: N802
        if urlsplit(self.path).path != "/review":
            self._send(HTTPStatus.NOT_FOUND, _message_page("Not found", "No such form."))
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_FORM_BYTES:
            self._send(HTTPStatus.BAD_REQUEST, _message_page("Bad request", "The form is missing or too large."))
            return
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode("utf-8", "replace")).items()}
        token = form.get("csrf", "")
        if not hmac.compare_digest(token.encode(), self.server.csrf_token.encode()):
            self._send(HTTPStatus.FORBIDDEN, _message_page(
                "Forbidden", "This form does not come from this review page (missing or stale token): "
                             "reload the page and try again."))
            return
        target, label = form.get("id", ""), form.get("label", "")
        try:
            result = self.server.desk.review(target, label)
        except ReviewError as exc:
            self._send(HTTPStatus.CONFLICT, _message_page("Not recorded", str(exc)))
            return
        except TwitchwatchError as exc:  # a bad label (UsageError) or the database down
            self._send(HTTPStatus.BAD_REQUEST, _message_page("Not recorded", str(exc)))
            return
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", "/?" + urlencode({"done": result.target, "verdict": result.verdict}))
        self.send_header("Content-Length", "0")
        self._security_headers()
        self.end_headers()

    # -- answers -------------------------------------------------------------

    def _send(self, status: HTTPStatus, body: str | bytes, content_type: str = "text/html; charset=utf-8") -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self._security_headers()
        self.end_headers()
        self.wfile.write(data)

    def _security_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)


# -- HTML ----------------------------------------------------------------------------


def _e(value: Any) -> str:
    """Escape anything for HTML text and attribute values."""
    return escape("" if value is None else str(value), quote=True)


def _document(title: str, body: str) -> str:
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def _message_page(title: str, message: str) -> str:
    return _document(f"twitchwatch review: {title}",
                     f'<h1>{_e(title)}</h1>\n<p class="message">{_e(message)}</p>\n<p><a href="/">Back to the '
                     "review page</a></p>")


def _page(items: list[dict[str, Any]], csrf: str, query: dict[str, list[str]]) -> str:
    flags = [i for i in items if i["kind"] == "flag"]
    checks = [i for i in items if i["kind"] == "check"]
    parts = ["<h1>twitchwatch review</h1>"]
    if query.get("done"):
        parts.append(f'<p class="notice" id="notice">{_e(query["done"][0])}: '
                     f'{_e((query.get("verdict") or [""])[0])}</p>')
    parts.append(f"<h2>Open flags ({len(flags)})</h2>")
    parts += [_item(i, csrf) for i in flags] or ["<p>No open flag awaits a verdict.</p>"]
    parts.append(f"<h2>Queued checks ({len(checks)})</h2>")
    parts += [_item(i, csrf) for i in checks] or ["<p>No queued check.</p>"]
    return _document("twitchwatch review", "\n".join(parts))


def _item(item: dict[str, Any], csrf: str) -> str:
    kind = item["kind"]
    anchor = f"{kind}-{item['id']}"
    login = _e(item["user_login"])
    who = f'<a href="{_e(item["channel_url"])}">{login}</a>' if item.get("channel_url") else login
    conf = f"{item['confidence']:.0%}" if isinstance(item.get("confidence"), (int, float)) else "-"
    predicted = item.get("predicted_game_id")
    shows = (f"{_e(item['predicted_game_name'])} ({_e(predicted)})" if predicted
             else f"{_e(item.get('predicted_game_name') or GAMEPLAY)} (a game outside the watched set)")
    facts = (f"declares <b>{_e(item['declared_game_name'])}</b> ({_e(item['declared_game_id'])}); the model sees "
             f"<b>{shows}</b>, confidence {conf}")
    if kind == "flag":
        facts += f"; {_e(item['checks'])} checks since {_e(item['first_seen'])}"
        sheets = [c["clip_id"] for c in item.get("clips", []) if c.get("contact_sheet")]
    else:
        facts += f"; checked {_e(item['checked_at'])}"
        sheets = [item["clip_id"]] if item.get("contact_sheet") else []
    images = "".join(f'<img class="sheet" src="/sheet/{_e(c)}.png" alt="contact sheet of check {_e(c)}">'
                     for c in sheets) or "<p><i>No frames kept for this one.</i></p>"
    confirm = predicted or GAMEPLAY
    title = f"Flag {_e(item['id'])}" if kind == "flag" else "Queued check"
    return (f'<article class="{kind}" id="{_e(anchor)}">\n<h3>{title}: {who}</h3>\n<p>{facts}</p>\n{images}\n'
            f'<form method="post" action="/review">'
            f'<input type="hidden" name="csrf" value="{_e(csrf)}">'
            f'<input type="hidden" name="id" value="{_e(item["id"])}">'
            f'<button type="submit" name="label" value="{_e(confirm)}" class="confirm">Confirm: it shows '
            f"{_e(item['predicted_game_name'] or GAMEPLAY)}</button>"
            f'<button type="submit" name="label" value="{OK}" class="reject">Reject: the declared category '
            f"is right</button></form>\n</article>")
