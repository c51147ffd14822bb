"""What the fault tests share: a stand-in with short-lived tokens, a Helix client on it, a movable clock."""

from __future__ import annotations

import contextlib
import io
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from cli_helpers import write_config
from sqlalchemy.engine import URL

from monitor.config import TwitchConfig
from monitor.helix import HelixClient


class Clock:
    """A wall clock that a test moves forward: `clock.advance(3600)` is an hour later for the client only."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def helix_client(sim, **kwargs) -> HelixClient:
    """Return a Helix client pointed at the stand-in (keyword arguments go to HelixClient)."""
    return HelixClient(TwitchConfig(**sim.twitch_config()), **kwargs)


def live_logins(sim, game_id: str) -> set[str]:
    """Return the logins the stand-in has live in a category, from its own world (not through Helix)."""
    return {ch.login for ch, state in sim.world.live_channels() if state.declared_game_id == game_id}


# -- every command, once, on a tiny world with secrets set (tests/test_security_*.py) ----------------------

CLIENT_SECRET = "zq9sEcReTcLiEnT0000000000000xx"  # the stand-in's app secret in the command world
DB_PASSWORD = "pgPassw0rdNeverShown"
WEBHOOK_SECRET = "hookT0kenNeverShown"
HOSTILE = "../../etc"


@dataclass
class CommandWorld:
    """What every command printed and logged once, on one tiny world, and what the secrets were."""

    root: Path
    data_dir: Path
    outputs: dict[str, tuple[int, str]] = field(default_factory=dict)  # command -> (exit code, stdout+stderr)
    secrets: list[str] = field(default_factory=list)
    logs: str = ""

    def text(self) -> str:
        """Return everything a user could have seen: outputs, logs, metrics, model cards, flags and queue files."""
        parts = [out for _, out in self.outputs.values()] + [self.logs]
        for path in self.data_dir.rglob("*"):
            if path.is_file() and path.suffix in (".json", ".jsonl", ".md", ".txt", ".toml", ".log"):
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)


def build_command_world(root: Path, cache_dir: Path, postgres_url: URL) -> CommandWorld:
    """Run each twitchwatch command once against a stand-in with hostile Helix data; collect what they showed."""
    import logging

    from prometheus_client import generate_latest

    from monitor.cli import main
    from monitor.config import load_config
    from monitor.cycle import Runtime, run_cycle
    from monitor.sim import StandIn, small_scenario

    scenario = small_scenario()
    world = CommandWorld(root=root, data_dir=root / "data")
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(self.format(record))
            if record.exc_info:
                records.append(logging.Formatter().formatException(record.exc_info))

    keep = Keep(logging.DEBUG)
    root_logger = logging.getLogger()
    old_level = root_logger.level
    root_logger.addHandler(keep)
    database_url = postgres_url.set(password=DB_PASSWORD).render_as_string(hide_password=False)
    hook = f"http://127.0.0.1:9/hooks/{WEBHOOK_SECRET}"
    with StandIn(scenario, cache_dir=cache_dir, client_secret=CLIENT_SECRET) as sim:
        config = write_config(root / "twitchwatch.toml", {
            "twitch": sim.twitch_config(),
            "categories": {"watch": [c.id for c in scenario.categories], "chatting": "509658"},
            "storage": {"database_url": database_url, "data_dir": str(world.data_dir)},
            "notify": {"webhook_url": hook},
            "model": {"pretrained": "none"},
            "monitor": {"metrics_port": 0, "capture_seconds": 4, "confirmations": 1, "segments": 2,
                        "frames_per_segment": 1},
            "dataset": {"streamers_per_category": 2, "clips_per_channel": 1},
            "train": {"batch_size": 4, "clips_per_epoch": 8},
        })

        def run(*command: str, key: str | None = None) -> None:
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main([*command, "--config", str(config)])
                except Exception as exc:  # --debug lets the last-resort error through as a traceback
                    code = -1
                    err.write("".join(traceback.format_exception(exc)))
            world.outputs[key or " ".join(command)] = (code, out.getvalue() + err.getvalue())

        try:
            # Hostile values from Helix: a login and a clip id that walk out of a directory, once each.
            sim.set_helix_fault("hostile_login", "streams", times=2)
            sim.set_helix_fault("hostile_login", "clips", times=2)
            run("db", "upgrade")
            run("db", "current")
            run("config", "show")
            run("config", "show", "--json")
            run("dataset", "build")
            run("train", "--epochs", "1", "--json")
            run("models", "--json")
            run("run", "--once", "--json")
            sim.set_helix_fault("hostile_login", "streams", times=1)
            run("run", "--once", "--json", "--debug", key="run --once --debug")
            run("check", scenario.channels[0].login, "--json")
            run("check", HOSTILE, key="check hostile")
            run("flags", "--json", "--all")
            run("flags")
            run("retrain", "--epochs", "1", "--json")
            run("doctor")
            sim.revoke_tokens()
            sim.set_token_endpoint_down(True)  # a failing command under --debug: its traceback
            run("check", scenario.channels[1].login, "--debug", key="check --debug failing")
            sim.set_token_endpoint_down(False)
            cfg = load_config(config)
            rt = Runtime(cfg)
            try:
                run_cycle(rt)
                world.outputs["metrics"] = (0, generate_latest(rt.metrics.registry).decode())
            finally:
                rt.close()
        finally:
            root_logger.removeHandler(keep)
            root_logger.setLevel(old_level)
        # Every token the stand-in ever issued, and the secret: none may show anywhere.
        world.secrets = [CLIENT_SECRET, DB_PASSWORD, WEBHOOK_SECRET, *sim.tokens.issued_tokens()]
    world.logs = "\n".join(records)
    return world


def fault_runtime(sim, tmp_path: Path, *, database_url: str | None = None, data_dir: Path | None = None,
                  **monitor):
    """Return a Runtime on the stand-in with an untrained model active (K=2, n=1): these tests pin faults."""
    from monitor.classify import build_model
    from monitor.config import load_config
    from monitor.cycle import Runtime
    from monitor.model_registry import ModelRegistry
    from monitor.store import Store
    from trainer.registry import save_model

    classes = [c.id for c in sim.scenario.categories]
    cfg = load_config(environ={}, overrides={
        "twitch": sim.twitch_config(),
        "categories": {"watch": classes, "chatting": "509658"},
        "monitor": {"capture_seconds": 4, "capture_timeout_seconds": 20.0, "segments": 2,
                    "frames_per_segment": 1, **monitor},
        "storage": {"database_url": database_url or f"sqlite:///{tmp_path / 'tw.db'}",
                    "data_dir": str(data_dir or tmp_path / "data")},
        "model": {"pretrained": "none"},
    })
    Store(cfg.storage.database_url).upgrade()
    if ModelRegistry(cfg.data_path).active_id() is None:
        model_id = save_model(cfg.data_path, build_model("squeezenet1_1", len(classes), "none"),
                              {"classes": classes, "arch": "squeezenet1_1", "segments": 2, "frames_per_segment": 1})
        ModelRegistry(cfg.data_path).activate(model_id)
    return Runtime(cfg)
