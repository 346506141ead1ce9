"""The chart's alerts and dashboard: off by default; the PrometheusRule's rules unit-tested with
`promtool test rules` (Debian's prometheus package; scripts/test-chart.sh installs it); every
alert documented with a runbook section of the README that its annotation links to; the
dashboard a valid Grafana JSON. tests/monitoring.rs checks that every metric they name is
exported by a running operator."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import CHART, ROOT, find, render

MONITORING = {"metrics": {"prometheusRule": {"enabled": True}, "dashboard": {"enabled": True}}}
ALL_ALERTS = {
    "NgrokEventsOperatorDown",
    "NgrokEventsOperatorNoLeader",
    "NgrokEventsOperatorReconcileErrors",
    "NgrokEventsOperatorResourcesStalled",
    "NgrokEventsOperatorNgrokRefused",
    "NgrokEventsOperatorNgrokUnavailable",
    "NgrokEventsOperatorNgrokBudgetNearLimit",
    "NgrokEventsOperatorDriftRepaired",
}


def rules(values: dict | None = None) -> list[dict]:
    merged = {**MONITORING, "leaderElection": {"enabled": True}, **(values or {})}
    rule = find(render(merged), "PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"]]


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is needed (scripts/test-chart.sh installs Debian's prometheus package)"
    return path


def test_off_by_default():
    kinds = {d["kind"] for d in render()}
    assert "PrometheusRule" not in kinds
    assert not [d for d in render() if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")]


def test_every_alert_is_there_with_leader_election_and_no_leader_alert_without_it():
    assert {r["alert"] for r in rules()} == ALL_ALERTS
    without = {r["alert"] for r in rules({"leaderElection": {"enabled": False}})}
    assert without == ALL_ALERTS - {"NgrokEventsOperatorNoLeader"}
    assert "NgrokEventsOperatorNgrokBudgetNearLimit" not in {r["alert"] for r in rules({"apiRateLimit": 0})}


def test_promtool_checks_and_unit_tests_the_rules(tmp_path):
    rendered = rules()
    (tmp_path / "full.yaml").write_text(yaml.safe_dump({"groups": [{"name": "ngrok-events-operator", "rules": rendered}]}))
    check = subprocess.run([promtool(), "check", "rules", str(tmp_path / "full.yaml")], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    # The unit tests compare labels; the annotations are checked below and by `check rules`.
    bare = [{k: v for k, v in r.items() if k != "annotations"} for r in rendered]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "ngrok-events-operator", "rules": bare}]}))
    shutil.copy(ROOT / "tests" / "chart" / "alerts_test.yaml", tmp_path / "alerts_test.yaml")
    out = subprocess.run([promtool(), "test", "rules", str(tmp_path / "alerts_test.yaml")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    tested = set(re.findall(r"alertname: (\w+)", (ROOT / "tests" / "chart" / "alerts_test.yaml").read_text()))
    assert tested == ALL_ALERTS, "every alert has a promtool test"


def github_anchor(heading: str) -> str:
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_links_to_its_runbook_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    anchors = {github_anchor(h) for h in re.findall(r"^#+ (.+)$", readme, re.M)}
    base = yaml.safe_load((CHART / "values.yaml").read_text())["metrics"]["prometheusRule"]["runbookBaseUrl"]
    for rule in rules():
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], rule["alert"]
        url, anchor = annotations["runbook_url"].split("#")
        assert url == base and anchor == rule["alert"].lower(), annotations["runbook_url"]
        assert anchor in anchors, f"README has no section {rule['alert']}"
        assert rule["labels"]["severity"] in ("critical", "warning", "info")


def test_the_dashboard_is_grafana_json_for_the_sidecar():
    configmap = find(render(MONITORING), "ConfigMap", "ngrok-events-operator-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(configmap["data"]["ngrok-events-operator.json"])
    assert dashboard["uid"] == "ngrok-events-operator"
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 10 and all('job=~"$job"' in e for e in exprs)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("values", [{"metrics": {"service": {"enabled": False}, "prometheusRule": {"enabled": True}}}])
def test_alerts_need_the_metrics_service(values):
    with pytest.raises(Exception, match="needs metrics.service.enabled"):
        render(values)
