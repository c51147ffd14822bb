"""The `twitchwatch` command line (also `python -m monitor`).

Every subcommand takes `--config PATH` and `--debug`, before or after its
name. Errors become exit codes here and only here: 2 for bad usage or
configuration, 1 for any other failure, each as one line on stderr (a
traceback only with --debug).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path

from monitor import __version__
from monitor.config import Config, load_config
from monitor.doctor import CHECKS
from monitor.errors import TwitchwatchError, UsageError
from monitor.logs import FORMATS, journal_prefix, setup_logging

log = logging.getLogger("twitchwatch")

ROLES = ("all", "scheduler", "worker")


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are UsageError (exit 2, one line)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _common(parser: argparse.ArgumentParser, top: bool) -> None:
    # SUPPRESS on subcommands keeps a value given before the subcommand.
    default = None if top else argparse.SUPPRESS
    parser.add_argument("--config", metavar="PATH", default=default, help="TOML config file (else $TWITCHWATCH_CONFIG)")
    parser.add_argument("--debug", action="store_true", default=False if top else argparse.SUPPRESS,
                        help="debug logging and tracebacks")
    parser.add_argument("--log-format", choices=FORMATS, default="auto" if top else argparse.SUPPRESS,
                        help="stderr log lines: text (timestamped), journal (<priority> prefixes, no time), "
                             "json (one object a line); auto: journal under systemd, else text")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="twitchwatch", description="Flag live Twitch streams whose category is not what is on screen.")
    parser.add_argument("--version", action="version", version=f"twitchwatch {__version__}")
    _common(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def command(name: str, help: str, func: Callable[[argparse.Namespace, Config], int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        _common(p, top=False)
        p.set_defaults(func=func)
        return p

    db = command("db", "manage the database schema", _cmd_db)
    db.add_argument("action", choices=["upgrade", "current"], help="upgrade: create or migrate to the current schema")

    run = command("run", "the daemon: poll, capture, classify, store and flag on the schedule", _cmd_run)
    run.add_argument("--once", action="store_true",
                     help="run exactly one full poll cycle, then exit (scheduler: queue one cycle; "
                          "worker: run queued checks until none is left)")
    run.add_argument("--json", action="store_true", help="with --once: print the cycle summary as JSON")
    run.add_argument("--role", choices=ROLES, default="all",
                     help="all: the single-process daemon (default); scheduler: poll Helix and queue the checks; "
                          "worker: run queued checks (scheduler and worker need PostgreSQL)")

    check = command("check", "check one live channel now and print the verdict", _cmd_check)
    check.add_argument("login", help="the channel's login name")
    check.add_argument("--json", action="store_true", help="print the verdict as JSON")

    config = command("config", "write a documented config file, or show the configuration in effect", _cmd_config)
    actions = config.add_subparsers(dest="config_action", metavar="ACTION", parser_class=_Parser)
    actions.required = True
    init = actions.add_parser("init", help="write a TOML file with every key, its default and what it does",
                              description="Write a TOML file with every key, its default and what it does; "
                                          "keys chosen with --from and --set are set, the rest commented out.")
    _common(init, top=False)
    init.add_argument("path", nargs="?", help="file to write (default: print it)")
    init.add_argument("--from", dest="from_file", metavar="TOML",
                      help="set the keys this TOML file sets (an older config, or the stand-in's lines)")
    init.add_argument("--set", dest="assignments", metavar="SECTION.KEY=VALUE", action="append", default=[],
                      help="set one key, typed as its environment variable would be (repeatable)")
    init.add_argument("--force", action="store_true", help="replace PATH if it exists")
    init.set_defaults(needs_config=False)
    show = actions.add_parser("show", help="print the configuration in effect (file and environment), secrets "
                                           "masked", description="Print the configuration in effect: defaults, "
                                           "then the file, then the environment; secrets masked.")
    _common(show, top=False)
    show.add_argument("--json", action="store_true", help="print one JSON object")

    flags = command("flags", "list the open flags", _cmd_flags)
    flags.add_argument("--json", action="store_true", help="print one JSON array")
    flags.add_argument("--all", action="store_true", help="closed flags too")

    review = command("review", "flags and queued checks awaiting a human verdict; give one; or serve the "
                               "review web page", _cmd_review)
    review.add_argument("target", nargs="?", metavar="ID|serve",
                        help="a flag id or a queued check's id (with --label), or `serve` for the web page")
    review.add_argument("--label", metavar="CATEGORY_ID|gameplay|ok",
                        help="what the screen shows: a watched category id, `gameplay` (a game outside the "
                             "watched set) or `ok` (the declared category is right: the flag is rejected)")
    review.add_argument("--json", action="store_true", help="print the list (or the verdict) as JSON")
    review.add_argument("--host", default=None, help="with serve: address to bind (default 127.0.0.1)")
    review.add_argument("--port", type=int, default=None, help="with serve: port (default 9465; 0: any free one)")
    drift = command("drift", "per declared category, the last day's predicted classes and confidence against the "
                             "active model's test-set reference", _cmd_drift)
    drift.add_argument("--json", action="store_true", help="print one JSON object")
    drift.add_argument("--hours", type=float, default=24.0, help="the window, in hours back from now (default 24)")

    doctor = command("doctor", "check that this host can run twitchwatch: one line per check, exit 1 if one fails",
                     _cmd_doctor)
    doctor.add_argument("--skip", action="append", default=[], choices=list(CHECKS), metavar="CHECK",
                        help=f"leave a check out (repeatable): {', '.join(CHECKS)}")
    doctor.add_argument("--json", action="store_true", help="print the findings as one JSON array")

    # Commands that need the trainer come from the `twitchwatch.commands` entry
    # points, so that monitor never imports trainer (the daemon runs without it).
    for entry in sorted(entry_points(group="twitchwatch.commands"), key=lambda e: e.name):
        entry.load()(command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    log_format = "auto"  # until the arguments are parsed

    def error(line: str) -> None:
        print(f"{journal_prefix(logging.ERROR, log_format, sys.stderr)}twitchwatch: {line}", file=sys.stderr)

    try:
        args = build_parser().parse_args(argv)
        log_format = args.log_format
        setup_logging(args.debug, log_format)
        # `config init` writes the file $TWITCHWATCH_CONFIG may name: it must not need it to exist.
        cfg = load_config(args.config) if getattr(args, "needs_config", True) else None
        return int(args.func(args, cfg) or 0)
    except TwitchwatchError as exc:
        if debug:
            logging.getLogger("twitchwatch").exception("failed")
        error(f"error: {exc}")
        return exc.exit_code
    except KeyboardInterrupt:
        error("interrupted")
        return 130
    except Exception as exc:  # the last resort: still one line unless --debug
        if debug:
            raise
        error(f"error: {type(exc).__name__}: {exc} (run with --debug for details)")
        return 1


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=False))


# -- commands ----------------------------------------------------------------


def _cmd_db(args: argparse.Namespace, cfg: Config) -> int:
    from monitor.store import Store

    store = Store(cfg.storage.database_url)
    try:
        if args.action == "upgrade":
            store.upgrade()
            print(f"database at the current schema: {_safe_url(cfg.storage.database_url)}")
        else:
            store.ensure_current()
            print("database is at the current schema")
    finally:
        store.dispose()
    return 0


def _cmd_run(args: argparse.Namespace, cfg: Config) -> int:
    if args.json and not args.once:
        raise UsageError("twitchwatch run: --json goes with --once")
    if args.role == "scheduler":
        return _run_scheduler(args, cfg)
    if args.role == "worker":
        return _run_worker(args, cfg)
    if not args.once:
        from monitor.daemon import run_daemon

        return run_daemon(cfg, args.config)
    from monitor.cycle import Runtime, run_cycle

    rt = Runtime(cfg)
    try:
        summary = run_cycle(rt)
    finally:
        rt.close()
    if args.json:
        _print_json(summary.to_json())
    else:
        print(_summary_line(summary.to_json()))
    return 0


def _run_scheduler(args: argparse.Namespace, cfg: Config) -> int:
    from monitor.scheduler import run_scheduler, schedule_once

    if not args.once:
        return run_scheduler(cfg, args.config)
    summary = schedule_once(cfg).to_json()
    if args.json:
        _print_json(summary)
    else:
        print(f"cycle queued: {summary['listed']} streams listed, {summary['queued']} checks queued, "
              f"{summary['already_queued']} still queued, {summary['running']} still running, "
              f"{summary['flags_closed']} flags closed")
    return 0


def _run_worker(args: argparse.Namespace, cfg: Config) -> int:
    from monitor.worker import run_worker

    summary = run_worker(cfg, once=args.once)
    if args.once:
        if args.json:
            _print_json(summary.to_json())
        else:
            s = summary.to_json()
            print(f"worker: {s['checks']} checks run ({' '.join(f'{k}={v}' for k, v in s['verdicts'].items())}), "
                  f"{s['failed']} failed, {s['wall_seconds']:.1f}s")
    return summary.exit_code


def _cmd_check(args: argparse.Namespace, cfg: Config) -> int:
    from monitor.check import check_stream
    from monitor.cycle import Runtime
    from monitor.errors import NotFoundError
    from monitor.helix import valid_login

    login = args.login.strip().lower()
    if not valid_login(login):
        # Checked before anything is built: a login names files and goes into URLs.
        raise NotFoundError(f"{args.login[:40]!r} is not a Twitch login (1 to 25 of a-z, 0-9 and _)")
    rt = Runtime(cfg)
    try:
        if rt.helix.user(login) is None:
            raise NotFoundError(f"no Twitch channel named {login!r}")
        stream = rt.helix.stream_of(login)
        if stream is None:
            if args.json:
                _print_json({"user_login": login, "outcome": "offline", "mismatch": False,
                             "declared_game_id": None, "predicted_game_id": None,
                             "predicted_game_name": None, "confidence": None, "scores": {}})
            else:
                print(f"{login} is offline: no verdict")
            return 0
        result = check_stream(rt.check_context, stream, rt.classifier())
        names = rt.category_names()
        payload = result.to_json(names)
    finally:
        rt.close()
    if args.json:
        _print_json(payload)
    else:
        print(_verdict_line(payload))
    return 0


def _cmd_config(args: argparse.Namespace, cfg: Config | None) -> int:
    from monitor import config_doc

    if args.config_action == "show":
        assert cfg is not None
        print(config_doc.effective_json(cfg) if args.json else config_doc.effective_toml(cfg, os.environ), end="")
        return 0
    chosen = config_doc.chosen_values(Path(args.from_file) if args.from_file else None, args.assignments)
    text = config_doc.example(chosen)
    if args.path is None:
        print(text, end="")
        return 0
    path = Path(args.path)
    config_doc.write_file(path, text, private=config_doc.holds_secret(chosen), force=args.force)
    count = sum(len(keys) for keys in chosen.values())
    print(f"wrote {path} ({count} keys set, every other key commented out at its default); "
          f"check it with: twitchwatch config show --config {shlex.quote(str(path))}")
    return 0


def _cmd_doctor(args: argparse.Namespace, cfg: Config) -> int:
    from monitor.doctor import FAIL, run_checks

    findings = run_checks(cfg, skip=args.skip)
    if args.json:
        _print_json([f.to_json() for f in findings])
    else:
        levels = {FAIL: logging.ERROR}
        for finding in findings:
            prefix = journal_prefix(levels.get(finding.status, logging.INFO), args.log_format, sys.stdout)
            print(prefix + finding.line(), flush=True)
    failed = [f.name for f in findings if f.status == FAIL]
    if failed:
        raise TwitchwatchError(f"doctor: {len(failed)} of {len(findings)} checks failed: {', '.join(failed)}")
    return 0


def _cmd_flags(args: argparse.Namespace, cfg: Config) -> int:
    from monitor.store import Store

    store = Store(cfg.storage.database_url)
    try:
        store.ensure_current()
        flags = store.flags(include_closed=args.all)
    finally:
        store.dispose()
    if args.json:
        _print_json(flags)
    elif not flags:
        print("no open flags" if not args.all else "no flags")
    else:
        for flag in flags:
            print(_flag_line(flag))
    return 0


def _cmd_review(args: argparse.Namespace, cfg: Config) -> int:
    from monitor.review import ReviewDesk

    if args.target == "serve":
        if args.label is not None or args.json:
            raise UsageError("twitchwatch review serve: --label and --json go with `review [ID]`, not serve")
        from monitor.review_web import DEFAULT_HOST, DEFAULT_PORT, serve

        port = DEFAULT_PORT if args.port is None else args.port
        if not 0 <= port <= 65535:
            raise UsageError(f"twitchwatch review serve: --port {port} is not a port (0 to 65535)")
        return serve(cfg, args.host or DEFAULT_HOST, port)
    if args.host is not None or args.port is not None:
        raise UsageError("twitchwatch review: --host and --port go with `review serve`")
    if (args.target is None) != (args.label is None):
        raise UsageError("twitchwatch review: give both ID and --label to record a verdict, or neither to list")
    desk = ReviewDesk(cfg)
    try:
        if args.target is None:
            items = desk.queue()
        else:
            result = desk.review(args.target, args.label)
    finally:
        desk.close()
    if args.target is not None:
        if args.json:
            _print_json(result.to_json())
        else:
            print(result.line())
    elif args.json:
        _print_json(items)
    elif not items:
        print("nothing awaits review")
    else:
        for item in items:
            print(_review_line(item))
def _cmd_drift(args: argparse.Namespace, cfg: Config) -> int:
    from monitor.drift import drift_report
    from monitor.model_registry import ModelRegistry
    from monitor.store import Store

    if not args.hours > 0:
        raise UsageError("twitchwatch drift: --hours must be positive")
    store = Store(cfg.storage.database_url)
    try:
        store.ensure_current()
        report = drift_report(store, ModelRegistry(cfg.data_path), hours=args.hours)
    finally:
        store.dispose()
    if args.json:
        _print_json(report.to_json())
    else:
        print("\n".join(report.lines()))
    return 0


# -- human-readable lines ------------------------------------------------------


def _review_line(item: dict) -> str:
    conf = f"{item['confidence']:.0%}" if isinstance(item.get("confidence"), (int, float)) else "-"
    what = f"flag {item['id']}" if item["kind"] == "flag" else f"check {item['id']}"
    sheet = item.get("contact_sheet") or "(no frames kept)"
    return (f"{what}: {item['user_login']} declares {item['declared_game_name']!r} ({item['declared_game_id']}), "
            f"shows {item['predicted_game_name']!r} ({conf}): {sheet}")



def _verdict_line(p: dict) -> str:
    if p["outcome"] in ("offline", "error"):
        return f"{p['user_login']}: {p['outcome']} ({p.get('error') or 'no verdict'})"
    shown = p["predicted_game_name"] or "nothing certain"
    conf = f"{p['confidence']:.0%}" if p["confidence"] is not None else "-"
    return (f"{p['user_login']}: declared {p['declared_game_name']!r}, on screen {shown!r} ({conf}): "
            f"{p['outcome'].upper()}")


def _flag_line(f: dict) -> str:
    return (f"[{f['status']}] {f['user_login']}: declares {f['declared_game_name']!r}, shows "
            f"{f['predicted_game_name']!r} ({f['confidence']:.0%}, {f['checks']} checks, "
            f"since {f['first_seen']})")


def _summary_line(s: dict) -> str:
    verdicts = " ".join(f"{k}={v}" for k, v in s["verdicts"].items())
    return (f"cycle: {s['checks']} checks, {s['completed']} completed ({verdicts}); "
            f"flags opened {s['flags_opened']}, closed {s['flags_closed']}; {s['wall_seconds']:.1f}s")


def _safe_url(url: str) -> str:
    """Hide a password in a database URL."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]
