"""The deploy files agree with the code: metric names and labels, datasource uids, SQL, units.

Every metric a Prometheus rule or a Grafana panel queries must be one that
Metrics exports (after every method ran once), with the labels it has; the
dashboard's SQL must run on the schema migrations create; the systemd unit
must give the daemon more time to stop than the daemon gives its cycle.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import MonitorConfig, load_config
from monitor.metrics import Metrics
from trainer.retrain_textfile import ATTEMPT_GAUGES, SUCCESS_GAUGES
from trainer.retrain_textfile import render as render_textfile

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "twitchwatch.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "twitchwatch.yml"
UNIT = DEPLOY / "systemd" / "twitchwatch.service"
WORKER_UNIT = DEPLOY / "systemd" / "twitchwatch-worker@.service"
RETRAIN_UNIT = DEPLOY / "systemd" / "twitchwatch-retrain.service"
SCHEDULER_DROPIN = DEPLOY / "systemd" / "twitchwatch.service.d" / "scheduler.conf"
COMPOSE = DEPLOY / "compose" / "compose.yaml"

# Made by Prometheus itself, not by any exporter.
PROMETHEUS_MADE = {"up"}
# Attached to every series by the scrape.
TARGET_LABELS = {"job", "instance"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
            "offset", "bool", "inf", "nan"}
NAME = r"[A-Za-z_:][A-Za-z0-9_:]*"


# -- reading the deploy files ---------------------------------------------------


def metric_names(expr: str) -> set[str]:
    """Return the metric names a PromQL expression selects."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", " ", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", " ", expr)  # ranges and subqueries
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in re.finditer(rf"(?<![\w:$.]){NAME}", expr):
        token = match.group(0)
        if expr[match.end():].lstrip().startswith("("):  # a function or an aggregation
            continue
        if token.lower() not in KEYWORDS:
            names.add(token)
    return names


def label_matchers(expr: str) -> list[tuple[str, str, str, str]]:
    """Return (metric, label, operator, value) for each matcher of a named selector."""
    out = []
    for selector in re.finditer(rf"(?<![\w:$.])({NAME})\s*\{{([^}}]*)\}}", expr):
        for m in re.finditer(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', selector.group(2)):
            out.append((selector.group(1), m.group(1), m.group(2), m.group(3)))
    return out


def alert_exprs() -> dict[str, str]:
    """Return {alert name: expr} from alerts.yml (one-line or `|` block exprs; no YAML library here)."""
    lines = ALERTS.read_text().splitlines()
    exprs: dict[str, str] = {}
    alert = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if m := re.match(r"\s*- alert:\s*(\S+)", line):
            alert = m.group(1)
        elif m := re.match(r"(\s*)expr:\s*(.*)$", line):
            indent, value = len(m.group(1)), m.group(2).strip()
            if value in ("|", "|-", ">", ">-"):
                block = []
                while i + 1 < len(lines) and (not lines[i + 1].strip() or
                                              len(lines[i + 1]) - len(lines[i + 1].lstrip()) > indent):
                    i += 1
                    block.append(lines[i].strip())
                value = " ".join(block)
            exprs[alert] = value
        i += 1
    return exprs


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def panels(board: dict) -> list[dict]:
    out = []
    for panel in board["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def dashboard_promql(board: dict) -> dict[str, str]:
    """Return {panel title/refId: PromQL} of every Prometheus query, template variables included."""
    out = {}
    for panel in panels(board):
        for target in panel.get("targets", []):
            if target.get("datasource", panel.get("datasource", {}))["type"] == "prometheus":
                out[f"{panel['title']}/{target['refId']}"] = target["expr"]
    for var in board["templating"]["list"]:
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        if m := re.match(r"label_values\((.*),\s*\w+\)$", query):
            out[f"variable {var['name']}"] = m.group(1)
    return out


def dashboard_sql(board: dict) -> dict[str, str]:
    return {panel["title"]: target["rawSql"] for panel in panels(board) for target in panel.get("targets", [])
            if "rawSql" in target}


def provisioned_uids() -> dict[str, str]:
    """Return {uid: type} of the provisioned datasources."""
    uids, kind = {}, None
    for line in DATASOURCES.read_text().splitlines():
        if m := re.match(r"\s*type:\s*(\S+)", line):
            kind = m.group(1)
        if m := re.match(r"\s*(?:- )?uid:\s*(\S+)", line):
            uids[m.group(1)] = None
        if kind and None in uids.values():
            uids = {u: (t or kind) for u, t in uids.items()}
            kind = None
    return uids


def unit_settings(path: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if m := re.match(r"([A-Za-z]+)=(.*)$", line):
            settings.setdefault(m.group(1), []).append(m.group(2))
    return settings


# -- what Metrics exports ---------------------------------------------------------


@pytest.fixture(scope="module")
def exported() -> dict[str, dict[str, set[str]]]:
    """Return {sample name: {label: values}} after every Metrics method ran once, and the retrain's textfile."""
    m = Metrics()
    m.watch_categories(["509658"])
    m.set_category_names({"509658": "Just Chatting"})
    for outcome in ("agree", "mismatch", "unsure", "offline", "error"):
        m.check_done("509658", outcome)
    for stage in ("capture", "decode", "inference"):
        m.observe_stage(stage, 1.0)
    m.helix_request("streams", 200, 700)
    m.helix_request("streams", 429, 0)
    m.helix_request("streams", 503, None)
    m.helix_request("token", 0, None)  # no answer
    m.bytes_downloaded("video", 10)
    m.bytes_downloaded("thumbnail", 10)
    m.flag_event("open", "509658")
    m.flag_event("close", "509658", "agrees")
    m.set_open_flags({"509658": 1})
    m.cycle_done(12.0, ok=True)
    m.cycle_done(12.0, ok=False)
    m.set_interval(300)
    m.set_model({"id": "m1", "arch": "squeezenet1_1", "classes": ["509658"], "test_accuracy": 0.7,
                 "created_at": "2024-01-01T00:00:00Z"})
    m.job_error()
    for result in ("ok", "failed", "dropped"):
        m.webhook_delivery(result)
    m.set_scheduler_active(True)
    m.checks_enqueued({"queued": 3, "already_queued": 1, "running": 1})
    m.set_check_queue({"todo": 2, "doing": 1})
    m.stalled_checks(1)
    # What node_exporter serves from the retrain's textfile, every gauge set.
    retrain_file = render_textfile({name: 1.0 for name in {**SUCCESS_GAUGES, **ATTEMPT_GAUGES}})
    m.set_drift({"classes": ["509658", "21779"], "categories": [{
        "category": "509658", "checks": 12, "predicted": {"509658": 0.5, "21779": 0.5}, "mean_confidence": 0.7,
        "reference": {"clips": 3, "predicted": {"509658": 1.0, "21779": 0.0}, "mean_confidence": 0.9},
        "tv_distance": 0.5, "moved": ["histogram"]}]}, watched=["509658"])
    samples: dict[str, dict[str, set[str]]] = {}
    for family in text_string_to_metric_families(generate_latest(m.registry).decode() + retrain_file.decode()):
        for s in family.samples:
            labels = samples.setdefault(s.name, {})
            for key, value in s.labels.items():
                labels.setdefault(key, set()).add(value)
    return samples


def check_queries(queries: dict[str, str], exported: dict[str, dict[str, set[str]]]) -> None:
    assert queries
    for where, expr in queries.items():
        names = metric_names(expr)
        assert names, f"{where}: no metric found in {expr!r}"
        unknown = names - exported.keys() - PROMETHEUS_MADE
        assert not unknown, (f"{where} queries {sorted(unknown)}, which twitchwatch does not export "
                             "(monitor.metrics.Metrics, trainer.retrain_textfile)")
        for metric, label, op, value in label_matchers(expr):
            if metric in PROMETHEUS_MADE:
                continue
            labels = exported[metric]
            assert label in labels.keys() | TARGET_LABELS, f"{where}: {metric} has no label {label!r}"
            if op == "=" and label in labels:
                assert value in labels[label], f"{where}: {metric}{{{label}={value!r}}} is never exported"


# -- tests --------------------------------------------------------------------------


def test_the_promql_reader_finds_names_and_skips_functions_labels_and_ranges():
    expr = ('histogram_quantile(0.95, sum by (le) (rate(a_seconds_bucket{instance=~"$instance", x="y"}'
            '[$__rate_interval]))) / ignoring(x) b_total offset 5m > 1e3 and on() time() - up')
    assert metric_names(expr) == {"a_seconds_bucket", "b_total", "up"}
    assert label_matchers(expr) == [("a_seconds_bucket", "instance", "=~", "$instance"),
                                    ("a_seconds_bucket", "x", "=", "y")]


def test_every_alert_is_read_from_the_rules_file():
    names = re.findall(r"- alert:\s*(\S+)", ALERTS.read_text())
    assert sorted(alert_exprs()) == sorted(names) and len(names) >= 6


def test_every_metric_the_alert_rules_query_is_exported(exported):
    check_queries(alert_exprs(), exported)


def test_every_metric_the_dashboard_queries_is_exported(exported):
    check_queries(dashboard_promql(dashboard()), exported)


def test_a_misspelt_metric_or_label_would_be_caught(exported):
    with pytest.raises(AssertionError, match="does not export"):
        check_queries({"x": "rate(twitchwatch_check_total[5m])"}, exported)
    with pytest.raises(AssertionError, match="no label 'channel'"):
        check_queries({"x": 'twitchwatch_checks_total{channel="x"}'}, exported)
    with pytest.raises(AssertionError, match="never exported"):
        check_queries({"x": 'twitchwatch_checks_total{outcome="maybe"}'}, exported)


def test_dashboard_panels_use_the_provisioned_datasource_uids():
    uids = provisioned_uids()
    assert uids == {"twitchwatch-prometheus": "prometheus", "twitchwatch-postgres": "grafana-postgresql-datasource"}
    board = dashboard()
    refs = [p["datasource"] for p in panels(board) if "datasource" in p]
    refs += [t["datasource"] for p in panels(board) for t in p.get("targets", [])]
    refs += [v["datasource"] for v in board["templating"]["list"]]
    assert refs and all(uids.get(ref["uid"]) == ref["type"] for ref in refs), refs
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_no_provisioned_datasource_claims_to_be_the_default():
    # Grafana refuses a second default datasource in an organisation: beside a host's own, a file
    # with isDefault: true would fail to provision. The dashboard names its datasources by uid.
    assert not re.search(r"^\s*isDefault:\s*true", DATASOURCES.read_text(), re.MULTILINE)


def test_the_database_panels_say_they_need_postgresql():
    sql_panels = dashboard_sql(dashboard())
    assert sql_panels
    for panel in panels(dashboard()):
        if panel["title"] in sql_panels:
            assert "Needs the PostgreSQL store" in panel["description"], panel["title"]


def expand_grafana_macros(sql: str, start: datetime, end: datetime) -> str:
    """Expand the two PostgreSQL macros the dashboard uses, as Grafana does."""
    seconds = {"1h": 3600, "1d": 86400}
    sql = re.sub(r"\$__timeGroupAlias\(([\w.]+),\s*'(\w+)'\)",
                 lambda m: f'floor(extract(epoch from {m.group(1)})/{seconds[m.group(2)]})*{seconds[m.group(2)]} '
                           f'AS "time"', sql)
    sql = re.sub(r"\$__timeFilter\(([\w.]+)\)",
                 lambda m: f"{m.group(1)} BETWEEN '{start.isoformat()}' AND '{end.isoformat()}'", sql)
    assert "$" not in sql, sql
    return sql


def seed_flags(url: str) -> None:
    """Store checks that leave one open flag per case: a known game, gameplay, and one closed flag."""
    from monitor.record import CheckRecord
    from monitor.store import Store

    with Store(url) as store:
        store.upgrade()
        store.upsert_categories({"509658": "Just Chatting", "33214": "Fortnite"})

        def check(user: str, outcome: str, predicted: str | None, label: str) -> None:
            store.record(CheckRecord(
                user_id=user, user_login=f"login{user}", display_name=f"Name{user}", declared_game_id="509658",
                declared_game_name="Just Chatting", stream_id=f"s{user}", outcome=outcome,
                predicted_game_id=predicted, predicted_label=label, confidence=0.9), confirmations=1)

        check("1", "mismatch", "33214", "33214")
        check("2", "mismatch", None, "gameplay")
        check("3", "mismatch", "33214", "33214")
        check("3", "agree", "509658", "509658")


def open_flags_rows(url: str) -> list[dict]:
    from sqlalchemy import text

    from monitor.store import Store

    sql = dashboard_sql(dashboard())["Open flags (database)"]
    with Store(url) as store, store.engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(text(sql))]


def test_open_flags_table_sql_runs_on_the_real_schema_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'tw.db'}"
    seed_flags(url)
    rows = open_flags_rows(url)
    assert sorted((r["channel"], r["on_screen"]) for r in rows) == [("login1", "Fortnite"), ("login2", "gameplay")]
    assert rows[0].keys() >= {"channel", "display_name", "declared", "on_screen", "confidence", "checks",
                              "first_seen", "last_seen", "url"}
    assert {r["url"] for r in rows} == {"https://www.twitch.tv/login1", "https://www.twitch.tv/login2"}


@pytest.mark.postgres
def test_dashboard_sql_runs_on_the_real_schema_postgres(postgres_database_url):
    from sqlalchemy import text

    from monitor.store import Store

    seed_flags(postgres_database_url)
    rows = open_flags_rows(postgres_database_url)
    assert sorted((r["channel"], r["declared"], r["on_screen"]) for r in rows) == [
        ("login1", "Just Chatting", "Fortnite"), ("login2", "Just Chatting", "gameplay")]
    now = datetime.now(UTC)
    sql = expand_grafana_macros(dashboard_sql(dashboard())["Flags opened per day (database)"],
                                now - timedelta(days=2), now + timedelta(minutes=1))
    with Store(postgres_database_url) as store, store.engine.connect() as conn:
        per_day = [dict(r._mapping) for r in conn.execute(text(sql))]
    # Three flags opened today (one closed since), all declaring Just Chatting.
    assert [(r["metric"], r["value"]) for r in per_day] == [("Just Chatting", 3)]
    assert per_day[0]["time"] == (now.timestamp() // 86400) * 86400


def test_the_unit_gives_the_daemon_more_time_to_stop_than_it_gives_its_cycle():
    settings = unit_settings(UNIT)

    def seconds(value: str) -> float:
        return float(value.removesuffix("s"))

    assert settings["Type"] == ["notify"] and settings["NotifyAccess"] == ["main"]
    assert seconds(settings["TimeoutStopSec"][0]) > MonitorConfig().stop_timeout_seconds
    # The daemon pings every WatchdogSec/2; a hung cycle is caught after its stall bound plus WatchdogSec.
    assert seconds(settings["WatchdogSec"][0]) >= 30
    assert settings["ExecStart"] == ["/opt/twitchwatch/bin/twitchwatch run"]
    assert "TWITCHWATCH_CONFIG=/etc/twitchwatch/twitchwatch.toml" in settings["Environment"]
    assert settings["EnvironmentFile"] == ["-/etc/twitchwatch/env"]
    # Secrets come from the environment file, never from the unit itself.
    assert not any(key.startswith(("TWITCH_CLIENT_SECRET", "TWITCH_CLIENT_ID")) for key in settings["Environment"])


def test_the_deploy_checks_script_is_executable_and_covers_every_tool():
    script = Path(__file__).resolve().parents[2] / ".ci" / "deploy-checks"
    text = script.read_text()
    assert script.stat().st_mode & 0o111
    for needle in ("systemd-analyze verify", "systemd-analyze security", "--threshold=20",
                   "promtool check config", "promtool check rules", "promtool test rules"):
        assert needle in text


def sandbox(path: Path) -> list[str]:
    """Return a unit's sandbox lines: from DynamicUser= to the [Install] section, comments left out."""
    text = path.read_text()
    block = text[text.index("DynamicUser="):text.index("[Install]")]
    return [line for line in block.splitlines() if line.strip() and not line.startswith("#")]


def test_the_worker_unit_runs_one_worker_per_metrics_port_in_the_daemons_sandbox():
    settings = unit_settings(WORKER_UNIT)
    assert settings["ExecStart"] == ["/opt/twitchwatch/bin/twitchwatch run --role worker"]
    assert "TWITCHWATCH_MONITOR__METRICS_PORT=%i" in settings["Environment"]
    assert settings["Type"] == ["notify"] and settings["NotifyAccess"] == ["main"]
    assert float(settings["TimeoutStopSec"][0].removesuffix("s")) > MonitorConfig().stop_timeout_seconds
    assert float(settings["WatchdogSec"][0].removesuffix("s")) >= 30
    assert settings["EnvironmentFile"] == ["-/etc/twitchwatch/env"]
    assert not any(key.startswith(("TWITCH_CLIENT_SECRET", "TWITCH_CLIENT_ID")) for key in settings["Environment"])
    # The same sandbox as the daemon's, line for line (systemd-analyze security rates each unit alone).
    assert sandbox(WORKER_UNIT) == sandbox(UNIT)


def test_the_retrain_unit_writes_its_textfile_where_it_may_and_node_exporter_reads():
    settings = unit_settings(RETRAIN_UNIT)
    assert settings["ExecStart"] == ["/opt/twitchwatch/bin/twitchwatch retrain --json"]
    environ = dict(line.split("=", 1) for line in settings["Environment"])
    environ.pop("TWITCHWATCH_CONFIG")  # /etc/twitchwatch/twitchwatch.toml: the host's, not here
    textfile = Path(load_config(environ=environ).retrain.textfile)  # a valid retrain.textfile (*.prom)
    assert textfile.is_absolute() and textfile.suffix == ".prom"
    # ProtectSystem=strict leaves only the state directory writable: the textfile's directory is added
    # ("-": a host without it still runs the retrain).
    assert settings["ProtectSystem"] == ["strict"]
    assert f"-{textfile.parent}" in settings["ReadWritePaths"]
    assert f"--collector.textfile.directory={textfile.parent}" in RETRAIN_UNIT.read_text()


def test_the_scheduler_drop_in_changes_only_the_role_of_the_daemon_unit():
    settings = unit_settings(SCHEDULER_DROPIN)
    assert settings == {"ExecStart": ["", "/opt/twitchwatch/bin/twitchwatch run --role scheduler"]}


def test_the_compose_file_starts_postgres_a_migration_a_scheduler_and_n_workers():
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    assert set(services) >= {"postgres", "migrate", "scheduler", "worker", "prometheus"}
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert services["scheduler"]["command"] == ["run", "--role", "scheduler"]
    assert services["worker"]["command"] == ["run", "--role", "worker"]
    assert services["worker"]["deploy"]["replicas"] == "${TWITCHWATCH_WORKERS:-2}"
    for name in ("scheduler", "worker"):
        service = services[name]
        assert service["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
        assert service["environment"]["TWITCHWATCH_STORAGE__DATABASE_URL"].startswith("postgresql+psycopg://")
        assert service["environment"]["TWITCHWATCH_MONITOR__METRICS_ADDR"] == "0.0.0.0"
        assert "data:/data" in service["volumes"]  # the model registry every worker loads
        assert float(service["stop_grace_period"].removesuffix("s")) > MonitorConfig().stop_timeout_seconds
    build = services["worker"]["build"]
    dockerfile = (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve()
    assert dockerfile.exists() and "ENTRYPOINT [\"twitchwatch\"]" in dockerfile.read_text()
    for mount in services["prometheus"]["volumes"]:
        assert (COMPOSE.parent / mount.split(":", 1)[0]).resolve().exists(), mount


def test_the_image_pins_the_torch_that_the_project_pins():
    pyproject = (DEPLOY.parent / "pyproject.toml").read_text()
    dockerfile = (DEPLOY / "compose" / "Dockerfile").read_text()
    for package in ("torch", "torchvision"):
        pin = re.search(rf'"{package}==([\d.]+)"', pyproject).group(1)
        assert f"{package}=={pin}" in dockerfile
