"""The Grafana dashboard: valid JSON in the expected shape, every PromQL expression parses (via
promtool) and names only metrics the code defines, and the required panels are there."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy.artifacts import DASHBOARD, defined_metric_names, grafana_exprs, metric_names
from tests.deploy.artifacts import promtool as promtool_path

# What each required panel must show, by the metric it reads.
REQUIRED_METRICS = {
    "Swift orders/s by outcome": {"swift_orders_total", "swift_orders_success_total",
                                  "swift_orders_failed_total", "swift_orders_fallback_total"},
    "API latency": {"swift_api_latency_ms_bucket"},
    "auction duration": {"swift_auction_duration_ms_bucket"},
    "price improvement": {"swift_price_improvement_bps_bucket"},
    "fallback reasons": {"swift_fallback_reasons_total"},
    "supervisor restarts": {"supervisor_restarts_total"},
    "mailbox depth": {"actor_mailbox_depth"},
    "retry queue depth": {"retry_queue_depth"},
    "IOUs pending": {"profit_share_ious_pending"},
    "active RPC endpoint": {"rpc_active_endpoint"},
    "webhook latency": {"webhook_latency_seconds_bucket"},
    "dependencies": {"dependency_up"},
}

# Grafana's variables, replaced by values PromQL accepts for the syntax check.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "30s",
                     "$instance": ".*"}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_dashboard_shape(dashboard: dict) -> None:
    assert dashboard["schemaVersion"] >= 39
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in _panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_panels_do_not_overlap(dashboard: dict) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_every_expression_uses_only_metrics_the_code_defines(dashboard: dict) -> None:
    defined = defined_metric_names()
    exprs = grafana_exprs(dashboard)
    assert len(exprs) > len(_panels(dashboard))
    for where, expr in exprs:
        names = metric_names(expr)
        assert names, where
        assert names <= defined, f"{where}: unknown {sorted(names - defined)}"


def test_the_panels_issue_7_asks_for_are_there(dashboard: dict) -> None:
    shown = set().union(*(metric_names(expr) for _, expr in grafana_exprs(dashboard)))
    for panel, metrics in REQUIRED_METRICS.items():
        assert metrics <= shown, f"{panel}: missing {sorted(metrics - shown)}"
    latency = " ".join(expr for _, expr in grafana_exprs(dashboard)
                       if "swift_api_latency_ms_bucket" in expr)
    assert {"0.5", "0.95", "0.99"} <= set(re.findall(r"histogram_quantile\(([\d.]+)", latency))


def test_every_expression_parses(dashboard: dict, tmp_path: Path) -> None:
    """promtool parses each expression as a recording rule, Grafana variables substituted."""
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    exprs = grafana_exprs(dashboard)
    for index, (_, expr) in enumerate(exprs):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, expr
        lines += [f"      - record: dashboard_expr_{index}", f"        expr: {json.dumps(expr)}"]
    rules = tmp_path / "dashboard-rules.yml"
    rules.write_text("\n".join(lines) + "\n")
    result = subprocess.run([promtool_path(), "check", "rules", str(rules)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout
