"""Check that this host can run twitchwatch: `twitchwatch doctor`, one line per check.

    findings = run_checks(cfg)                # every check, in CHECKS order
    print("\\n".join(f.line() for f in findings))
    failed = [f for f in findings if f.status == FAIL]

Each check says what it found and, when it fails, what to do. A check that
needs another one's result (streamlink needs a token) is skipped when that
one failed, and says so. Nothing here writes: no database file is created,
no weights are downloaded, the metrics port is only bound for a moment.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from monitor.config import Config
from monitor.errors import TwitchwatchError

OK, FAIL, SKIP = "ok", "FAIL", "skip"


@dataclass(frozen=True)
class Finding:
    """The result of one check: its name, ok / FAIL / skip, and what was found."""

    name: str
    status: str
    detail: str

    def line(self) -> str:
        return f"{self.status:<4}  {self.name:<13} {self.detail}"

    def to_json(self) -> dict:
        return {"check": self.name, "status": self.status.lower(), "detail": self.detail}


@dataclass
class _Context:
    cfg: Config
    helix: object | None = None  # monitor.helix.HelixClient once a token was minted


Check = Callable[[_Context], tuple[str, str]]


def _credentials(ctx: _Context) -> tuple[str, str]:
    from monitor.helix import HelixClient

    helix = HelixClient(ctx.cfg.twitch)
    helix.token()
    ctx.helix = helix
    return OK, f"a token was minted at {ctx.cfg.twitch.auth_url} for client id {ctx.cfg.twitch.client_id}"


def _schema(ctx: _Context) -> tuple[str, str]:
    from monitor.store import Store
    from monitor.store.engine import safe_url

    store = Store(ctx.cfg.storage.database_url)
    try:
        store.ensure_current()
    finally:
        store.dispose()
    return OK, f"{safe_url(ctx.cfg.storage.database_url)} is at the current schema"


def _model(ctx: _Context) -> tuple[str, str]:
    import numpy as np

    from monitor.model_registry import ModelRegistry

    classifier = ModelRegistry(ctx.cfg.data_path).load_active()
    # A frame as a capture gives one (360p, RGB): the whole path through preprocessing and the net.
    frame = np.random.default_rng(0).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    started = time.monotonic()
    scores = classifier.score([frame]).scores
    took = time.monotonic() - started
    total = sum(scores.values())
    if not all(np.isfinite(v) for v in scores.values()) or abs(total - 1) > 1e-3:
        return FAIL, f"model {classifier.model_id} gives no probabilities (sum {total:.3f}): retrain it"
    unknown = [gid for gid in ctx.cfg.categories.watch if gid not in classifier.classes]
    note = f"; watched categories it has no class for: {', '.join(unknown)}" if unknown else ""
    return OK, (f"model {classifier.model_id} ({classifier.arch}, {len(classifier.classes)} classes) "
                f"scored a frame in {took * 1000:.0f} ms{note}")


def _metrics_port(ctx: _Context) -> tuple[str, str]:
    addr, port = ctx.cfg.monitor.metrics_addr, ctx.cfg.monitor.metrics_port
    if port == 0:
        return OK, f"monitor.metrics_port = 0: the daemon picks a free port on {addr}"
    try:
        family = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the exporter binds
            sock.bind((addr, port))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            return FAIL, f"cannot bind {addr}:{port}: {exc.strerror or exc} (set monitor.metrics_addr)"
        if _serves_twitchwatch(addr, port):
            return OK, f"{addr}:{port} is served by a running twitchwatch"
        return FAIL, (f"{addr}:{port} is in use by another program: stop it or set monitor.metrics_port "
                      "(and the target in prometheus.yml)")
    return OK, f"{addr}:{port} is free"


def _serves_twitchwatch(addr: str, port: int) -> bool:
    host = f"[{addr}]" if ":" in addr else addr
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=3) as answer:
            return b"twitchwatch_build_info" in answer.read(1_000_000)
    except (OSError, ValueError):
        return False


def _disk(ctx: _Context) -> tuple[str, str]:
    from monitor.retain import ClipArea

    retain = ctx.cfg.retain
    data = ctx.cfg.data_path.resolve()
    existing = next(p for p in (data, *data.parents) if p.exists())
    free = shutil.disk_usage(existing).free
    where = str(data) if existing == data else f"{data} (not created yet; on the disk of {existing})"
    if not _writable(existing):
        return FAIL, f"{where} is not writable by this user"
    if not retain.enabled:
        return OK, f"{_size(free)} free under {where}; retain.enabled = false, nothing is kept"
    kept = ClipArea(data / "live", retain.max_bytes).usage() + ClipArea(data / "review", retain.review_max_bytes).usage()
    budget = retain.max_bytes + retain.review_max_bytes
    needed = max(0, budget - kept)
    summary = (f"{_size(free)} free under {where}; the retain budget (retain.max_bytes + "
               f"retain.review_max_bytes = {_size(budget)}, {_size(kept)} kept) needs {_size(needed)} more")
    if free < needed:
        return FAIL, summary + ": free space or lower the budget"
    return OK, summary


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK | os.X_OK)


def _streamlink(ctx: _Context) -> tuple[str, str]:
    from streamlink import Streamlink

    if ctx.helix is None:
        return SKIP, "needs the credentials check to pass"
    for game_id in ctx.cfg.categories.watch:
        streams = ctx.helix.top_streams(game_id, 1)  # type: ignore[attr-defined]
        if streams:
            stream = streams[0]
            break
    else:
        return SKIP, "no watched category has a live stream to try right now"
    url = ctx.cfg.twitch.stream_url.format(user_login=stream.user_login)
    session = Streamlink()
    session.set_option("http-timeout", ctx.cfg.twitch.request_timeout_seconds)
    try:
        variants = [name for name in session.streams(url) if name not in ("best", "worst")]
    except Exception as exc:  # streamlink's own errors, and the network's
        return FAIL, f"streamlink cannot open {url}: {type(exc).__name__}: {exc}"
    if not variants:
        return FAIL, f"streamlink found no video in {url} although Helix lists it live"
    return OK, f"streamlink resolved {url} ({stream.game_name or stream.game_id}): {', '.join(variants)}"


def _weights(ctx: _Context) -> tuple[str, str]:
    from monitor.classify import build_model

    arch, pretrained = ctx.cfg.model.arch, ctx.cfg.model.pretrained
    if pretrained == "none":
        return OK, 'not needed: model.pretrained = "none" (new models start from random weights)'
    if pretrained == "imagenet":
        import torch
        from torchvision import models

        weights = {"squeezenet1_0": models.SqueezeNet1_0_Weights, "squeezenet1_1": models.SqueezeNet1_1_Weights}
        url = weights[arch].IMAGENET1K_V1.url
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
        if not cached.is_file():
            return FAIL, (f"ImageNet weights for {arch} are not cached at {cached}: training would download "
                          f"{url}; put the file there, or set model.pretrained to \"none\" or a weights file")
        build_model(arch, 2, "imagenet")  # loads the cached file; a damaged one raises ModelError
        return OK, f"ImageNet weights for {arch} cached at {cached}"
    build_model(arch, 2, pretrained)
    return OK, f"weights file {pretrained} fits {arch}"


CHECKS: dict[str, Check] = {
    "credentials": _credentials,
    "schema": _schema,
    "model": _model,
    "metrics-port": _metrics_port,
    "disk": _disk,
    "streamlink": _streamlink,
    "weights": _weights,
}


def run_checks(cfg: Config, skip: Iterable[str] = ()) -> list[Finding]:
    """Run every check not in `skip`, in order; none raises, each becomes one Finding."""
    skipped = set(skip)
    unknown = skipped - CHECKS.keys()
    if unknown:
        raise ValueError(f"unknown checks {sorted(unknown)}; expected some of {', '.join(CHECKS)}")
    ctx = _Context(cfg)
    findings = []
    for name, check in CHECKS.items():
        if name in skipped:
            findings.append(Finding(name, SKIP, "skipped (--skip)"))
            continue
        try:
            status, detail = check(ctx)
        except TwitchwatchError as exc:
            status, detail = FAIL, str(exc)
        except Exception as exc:  # a check must report, never crash the doctor
            status, detail = FAIL, f"{type(exc).__name__}: {exc}"
        findings.append(Finding(name, status, detail))
    return findings


def _size(n: float) -> str:
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("kB", "MB", "GB"):
        n /= 1000
        if n < 1000:
            return f"{n:.1f} {unit}"
    return f"{n / 1000:.1f} TB"
