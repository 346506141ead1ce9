"""argocd/health.lua run by a real Lua 5.1 interpreter (Argo CD's semantics) against the status
fixtures of both kinds recorded from real runs of the operator (tests/deploy_fixtures.rs), as
installed by the ready-to-apply argocd/argocd-cm.yaml."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

import render_argocd
from conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "status"
SUBSCRIPTION_FIXTURES = FIXTURES / "subscription"
CONFIGMAP = ROOT / "argocd" / "argocd-cm.yaml"
SUBSCRIPTION_EXPECTED = {
    "ready": "Healthy",
    "reconciling": "Progressing",
    "stalled": "Degraded",
    "paused": "Suspended",
    "observing": "Suspended",
    "generation-behind": "Progressing",
    "deleting": "Progressing",
}
EXPECTED = {
    "ready": "Healthy",
    "stalled": "Degraded",
    "paused": "Suspended",
    "observing": "Suspended",
    "creating": "Progressing",
    "ngrok-unavailable": "Progressing",
    "generation-behind": "Progressing",
    "deleting": "Progressing",
}


def lua_literal(value) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are valid Lua 5.1 escapes for this text
    if isinstance(value, list):
        return "{" + ", ".join(lua_literal(v) for v in value) + "}"
    return "{" + ", ".join(f"[{json.dumps(k)}] = {lua_literal(v)}" for k, v in value.items()) + "}"


def installed_script(kind: str) -> str:
    """The health check Argo CD runs for `kind`, read from the ConfigMap a user applies."""
    data = yaml.safe_load(CONFIGMAP.read_text())["data"]
    return data[f"resource.customizations.health.events.ngrok.io_{kind}"]


def health(obj: dict) -> tuple[str, str]:
    lua = shutil.which("lua5.1")
    assert lua, "lua5.1 is needed (scripts/test-chart.sh installs it)"
    script = ("obj = " + lua_literal(obj) + "\nlocal hs = (function()\n" + installed_script(obj["kind"])
              + "\nend)()\nio.write(hs.status, '\\t', hs.message)\n")
    out = subprocess.run([lua, "-"], input=script, capture_output=True, text=True, check=True)
    status, message = out.stdout.split("\t", 1)
    return status, message


def test_every_fixture_is_covered():
    assert sorted(p.stem for p in FIXTURES.glob("*.json")) == sorted(EXPECTED)
    assert sorted(p.stem for p in SUBSCRIPTION_FIXTURES.glob("*.json")) == sorted(SUBSCRIPTION_EXPECTED)


def test_the_configmap_installs_health_lua_for_both_kinds():
    assert CONFIGMAP.read_text() == render_argocd.render(), "run python3 tests/chart/render_argocd.py"
    for kind in ("EventDestination", "EventSubscription"):
        assert installed_script(kind) == (ROOT / "argocd" / "health.lua").read_text()


@pytest.mark.parametrize("name", sorted(SUBSCRIPTION_EXPECTED))
def test_health_of_real_subscription_status(name):
    obj = json.loads((SUBSCRIPTION_FIXTURES / f"{name}.json").read_text())
    assert obj["kind"] == "EventSubscription"
    status, message = health(obj)
    assert status == SUBSCRIPTION_EXPECTED[name], message
    assert message


def test_a_subscription_waiting_for_its_destination_says_so():
    status, message = health(json.loads((SUBSCRIPTION_FIXTURES / "reconciling.json").read_text()))
    assert status == "Progressing" and message.startswith("DestinationNotReady: "), message


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_health_of_real_status(name):
    status, message = health(json.loads((FIXTURES / f"{name}.json").read_text()))
    assert status == EXPECTED[name], message
    assert message


def test_a_stalled_message_names_the_reason():
    status, message = health(json.loads((FIXTURES / "stalled.json").read_text()))
    assert message.startswith("SecretNotFound: "), message


def test_no_status_yet_is_progressing():
    obj = json.loads((FIXTURES / "ready.json").read_text())
    del obj["status"]
    assert health(obj)[0] == "Progressing"


def test_stalled_wins_over_paused():
    obj = json.loads((FIXTURES / "stalled.json").read_text())
    obj["metadata"]["annotations"] = {"events.ngrok.io/paused": "true"}
    assert health(obj)[0] == "Degraded"
