"""argocd/health.lua run by a real Lua 5.1 interpreter (Argo CD's semantics) against the status
fixtures recorded from real runs of the operator (tests/deploy_fixtures.rs)."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from conftest import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "status"
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


def health(obj: dict) -> tuple[str, str]:
    lua = shutil.which("lua5.1")
    assert lua, "lua5.1 is needed (scripts/test-chart.sh installs it)"
    script = ("obj = " + lua_literal(obj) + "\nlocal hs = (function()\n" + (ROOT / "argocd" / "health.lua").read_text()
              + "\nend)()\nio.write(hs.status, '\\t', hs.message)\n")
    out = subprocess.run([lua, "-"], input=script, capture_output=True, text=True, check=True)
    status, message = out.stdout.split("\t", 1)
    return status, message


def test_every_fixture_is_covered():
    assert sorted(p.stem for p in FIXTURES.glob("*.json")) == sorted(EXPECTED)


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
