"""The Prometheus artifacts: promtool accepts the rules and the config, the rules' unit tests
pass, every alert names metrics the code defines, and every runbook link lands on a heading."""

from __future__ import annotations

import re
import subprocess

from config.settings import SETTINGS
from tests.deploy.artifacts import (
    ALERT_TESTS,
    ALERTS,
    PROMETHEUS_CONFIG,
    PROMETHEUS_OWN,
    ROOT,
    RUNBOOK,
    alert_rules,
    defined_metric_names,
    heading_anchors,
    metric_names,
    promtool,
)

PLAN_ALERTS = {  # the five Swift alerts: Swift down and error rate critical, the rest warning
    "SwiftApiDown": "critical",
    "SwiftHighFallbackRate": "warning",
    "SwiftLatencySpike": "warning",
    "SwiftMarketLowSuccessRate": "warning",
    "SwiftErrorRateHigh": "critical",
}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=60,
                          cwd=ALERTS.parent, check=False)


def test_promtool_accepts_the_rules_and_the_reader_sees_every_rule() -> None:
    result = _run("check", "rules", ALERTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(r"SUCCESS: (\d+) rules found", result.stdout)
    assert found, result.stdout
    assert int(found[1]) == len(alert_rules(ALERTS.read_text()))


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    result = _run("test", "rules", ALERT_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_cover_every_alert_firing() -> None:
    tests = ALERT_TESTS.read_text()
    for rule in alert_rules(ALERTS.read_text()):
        block = re.search(rf"alertname: {rule['alert']}\n\s+exp_alerts:\n\s+- exp_labels", tests)
        assert block, f"no promtool test expects {rule['alert']} to fire"


def test_promtool_accepts_the_example_config() -> None:
    result = _run("check", "config", PROMETHEUS_CONFIG.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_promtool_rejects_a_broken_rule(tmp_path) -> None:
    """The check can fail: a rule with a PromQL syntax error is refused."""
    broken = tmp_path / "broken.yml"
    broken.write_text(ALERTS.read_text().replace("swift_healthy == 0", "swift_healthy == ", 1))
    result = subprocess.run([promtool(), "check", "rules", str(broken)], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode != 0


def test_the_plan_alerts_exist_with_the_plan_severity() -> None:
    severities = {r["alert"]: r["severity"] for r in alert_rules(ALERTS.read_text())}
    for alert, severity in PLAN_ALERTS.items():
        assert severities.get(alert) == severity, alert


def test_every_alert_has_severity_summary_description_and_a_runbook_heading() -> None:
    anchors = heading_anchors(RUNBOOK.read_text())
    rules = alert_rules(ALERTS.read_text())
    assert len({r["alert"] for r in rules}) == len(rules), "duplicate alert names"
    for rule in rules:
        assert rule.get("severity") in ("critical", "warning"), rule["alert"]
        assert rule.get("summary") and rule.get("description"), rule["alert"]
        path, _, anchor = rule["runbook_url"].partition("#")
        assert (ROOT / path) == RUNBOOK, rule["alert"]
        assert anchor == rule["alert"].lower() and anchor in anchors, rule["alert"]


def test_alert_expressions_use_only_metrics_the_code_defines() -> None:
    defined = defined_metric_names() | PROMETHEUS_OWN
    for rule in alert_rules(ALERTS.read_text()):
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= defined, f"{rule['alert']}: unknown {sorted(names - defined)}"


def test_the_metric_name_reader() -> None:
    """A misspelt or renamed metric is caught; functions, labels and variables are not names."""
    expr = ('histogram_quantile(0.95, sum by (le) (rate(swift_api_latency_ms_bucket'
            '{instance=~"$instance", le!="x"}[$__rate_interval]))) > 2000 and on (job) '
            'increase(swift_orders_total[5m] offset 1m) >= 1e1 or absent(up{job="q"})')
    assert metric_names(expr) == {"swift_api_latency_ms_bucket", "swift_orders_total", "up"}
    defined = defined_metric_names()
    assert {"swift_orders_total", "swift_orders_fallback_total", "swift_api_latency_ms_bucket",
            "supervisor_restarts_total", "actor_mailbox_depth", "dependency_up"} <= defined
    assert "swift_order_total" not in defined
    assert "swift_orders" not in defined  # a counter is scraped only with its _total suffix


def test_the_config_scrapes_the_daemon_where_the_rules_expect_it() -> None:
    config = PROMETHEUS_CONFIG.read_text()
    defaults = {s.name: s.default for s in SETTINGS}
    assert f'"{defaults["WEBHOOK_HOST"]}:{defaults["METRICS_PORT"]}"' in config
    assert re.search(r"^\s+- job_name: quantumvault\b", config, flags=re.M)
    assert 'up{job="quantumvault"}' in ALERTS.read_text()
