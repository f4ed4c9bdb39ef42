"""Readers for the files under deploy/: the tools, the metric names the code defines, PromQL names.

The alert rules are read with a small line-based reader instead of a YAML library (none is a
dependency); `promtool check rules` reports how many rules it parsed, and the tests compare that
count with what this reader found, so a rule it misses fails the suite.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
ALERTS = PROMETHEUS / "quantumvault-alerts.yml"
ALERT_TESTS = PROMETHEUS / "alerts_test.yml"
PROMETHEUS_CONFIG = PROMETHEUS / "prometheus.yml"
DASHBOARD = DEPLOY / "grafana" / "quantumvault-dashboard.json"
RUNBOOK = DEPLOY / "RUNBOOK.md"
UNIT = DEPLOY / "quantumvault.service"
ENV_EXAMPLE = DEPLOY / "quantumvault.env.example"

# Series Prometheus makes itself for every target, not the daemon.
PROMETHEUS_OWN = frozenset({"up"})

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gauge": ("",),
    "unknown": ("",),
}


def promtool() -> str:
    """Path of promtool (on PATH or in the venv's bin); the suite fails, not skips, without it."""
    path = shutil.which("promtool") or shutil.which("promtool", path=str(Path(sys.prefix) / "bin"))
    if path is None:
        pytest.fail("promtool not found on PATH: run scripts/test.sh, which installs it "
                    "(Debian package `prometheus`)")
    return path


def defined_metric_names() -> frozenset[str]:
    """Every series name the daemon's code registers in prometheus_client's default REGISTRY."""
    import actors.health_monitor  # noqa: F401 - registers dependency_up, dependency_probe_seconds
    import observability.node_metrics  # registers the per-worker metrics
    import observability.trading_metrics  # noqa: F401 - registers the trading metrics
    from supervision.metrics import register_mailbox_collector

    register_mailbox_collector()  # actor_mailbox_depth, as runtime.py does at start
    names: set[str] = set()
    for family in REGISTRY.collect():
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
    return frozenset(names)


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_IDENT = re.compile(r"(?<![\w$.:])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "and",
                       "or", "unless", "bool", "offset", "inf", "nan", "Inf", "NaN"})


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, keywords, labels and durations dropped).

    Grafana variables are fine: they appear only inside label matchers and range brackets.
    """
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGES.sub("", text)
    text = _GROUPING.sub("", text)
    return {name for name, call in _IDENT.findall(text) if not call and name not in _KEYWORDS}


def alert_rules(text: str) -> list[dict[str, str]]:
    """Each `- alert:` entry of a rules file: alert, expr, for, severity and the annotations."""
    rules: list[dict[str, str]] = []
    chunks = re.split(r"^\s*- alert:\s*", text, flags=re.MULTILINE)[1:]
    for chunk in chunks:
        lines = chunk.splitlines()
        rule = {"alert": lines[0].strip()}
        for index, line in enumerate(lines[1:], start=1):
            match = re.match(r"^(\s*)(expr|for|severity|summary|description|runbook_url):\s*(.*)$",
                             line)
            if not match:
                continue
            indent, key, value = len(match[1]), match[2], match[3].strip()
            if value in ("|", ">-", ">", "|-"):
                block = []
                for following in lines[index + 1:]:
                    if following.strip() and len(following) - len(following.lstrip()) <= indent:
                        break
                    block.append(following.strip())
                value = " ".join(part for part in block if part)
            rule[key] = value.strip('"')
        rules.append(rule)
    return rules


def grafana_exprs(dashboard: dict) -> list[tuple[str, str]]:
    """(where, expr) of every panel target and every query variable of a dashboard."""
    found: list[tuple[str, str]] = []

    def walk(panels: list[dict]) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                if "expr" in target:
                    found.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", text)
            found.append((f"variable {variable['name']}", inner[1] if inner else text))
    return found


def heading_anchors(markdown: str) -> set[str]:
    """GitHub-style anchors of the Markdown headings."""
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors
