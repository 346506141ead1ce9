"""The rendered manifests against the Kubernetes OpenAPI schemas (kubernetes-validate, strict:
unknown fields fail) for the oldest and a current Kubernetes, and against checkov's
Kubernetes policies."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import kubernetes_validate
import pytest
import yaml

from conftest import ROOT, render
from test_render import NON_DEFAULT

# ServiceMonitor is not a Kubernetes kind; its CRD comes with prometheus-operator.
NOT_KUBERNETES = {"ServiceMonitor"}


# kubernetes-validate bundles schemas from 1.25 on; 1.20 is covered by installing into the
# test bed's 1.20 API server (test_install.py), which validates every object.
@pytest.mark.parametrize("version", ["1.25.0", kubernetes_validate.latest_version() + ".0"])
@pytest.mark.parametrize("values", [{}, NON_DEFAULT], ids=["defaults", "non-default"])
def test_manifests_match_the_kubernetes_schemas(version, values):
    for doc in render(values, hooks=True):
        if doc["kind"] in NOT_KUBERNETES:
            continue
        kubernetes_validate.validate(doc, version, strict=True)


def test_deploy_matches_the_kubernetes_schemas():
    for path in (ROOT / "deploy").glob("*.yaml"):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                kubernetes_validate.validate(doc, "1.25.0", strict=True)


# Checks that do not apply, each with the reason. Everything else must pass.
CHECKOV_SKIPS = {
    "CKV_K8S_11": "CPU limits: a limit only throttles reconciles; the CPU request is set and memory is limited",
    "CKV_K8S_43": "image digest: the chart pins the tag to its appVersion; image.tag accepts tag@sha256:… for digests",
    "CKV_K8S_15": "pullPolicy Always: IfNotPresent with a fixed version tag avoids a registry round trip per restart",
    "CKV2_K8S_6": "NetworkPolicy: egress to the API server and api.ngrok.com is cluster-specific; README shows one",
}


def checkov(directory) -> dict:
    args = [sys.executable, "-m", "checkov.main", "--quiet", "--compact", "-o", "json", "--skip-download",
            "--framework", "kubernetes",
            "-d", str(directory), "--skip-check", ",".join(CHECKOV_SKIPS)]
    out = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"})
    return json.loads(out.stdout)


@pytest.mark.parametrize("values", [{}, NON_DEFAULT], ids=["defaults", "non-default"])
def test_checkov_finds_nothing_unexplained(values, tmp_path):
    docs = render(values, hooks=True)
    (tmp_path / "all.yaml").write_text(yaml.safe_dump_all(docs))
    report = checkov(tmp_path)
    failed = [(f["check_id"], f["check_name"], f["resource"]) for f in report["results"]["failed_checks"]]
    assert not failed, "\n".join(map(str, failed))
    assert report["summary"]["passed"] > 50
