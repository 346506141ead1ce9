"""Shared helpers of the chart tests: rendering with the real Helm SDK, and a small client
for the test bed's API server (the kubeconfig of scripts/test.sh or scripts/test-chart.sh)."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import tempfile
import time

import helm_python as helm
import pytest
import requests
import urllib3
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "ngrok-events-operator"
RELEASE = "ngrok-events-operator"
NAMESPACE = "ngrok-events-operator"
CRD_NAMES = sorted(p.stem for p in (ROOT / "crds").glob("*.yaml"))


def render(values: dict | None = None, name: str = RELEASE, namespace: str = NAMESPACE,
           hooks: bool = False) -> list[dict]:
    """The chart's objects (templates only, as `helm template` without --include-crds), and with
    `hooks=True` the uninstall drain's too (its pre-delete Job, and the ServiceAccount and RBAC
    that the Job runs with)."""
    chart = helm.Chart.load(str(CHART))
    out = chart.render(values or {}, name=name, namespace=namespace)
    docs = []
    for path in sorted(out):
        if not path.endswith(".yaml"):
            continue
        if path.endswith("templates/drain-hook.yaml") and not hooks:
            continue
        docs.extend(d for d in yaml.safe_load_all(out[path]) if d)
    return docs


def helm_install(config: helm.Config, name: str, values: dict, namespace: str, chart=CHART, **options) -> dict:
    """`helm install`, with options Config.install does not take: `take_ownership=True` is
    `--take-ownership`, `skip_crds=True` is `--skip-crds`."""
    return _release_action("helm_install", config, chart, name, values, {"namespace": namespace, **options})


def helm_upgrade(config: helm.Config, name: str, values: dict, namespace: str, chart=CHART, **options) -> dict:
    """`helm upgrade`, with options Config.upgrade does not take (`take_ownership=True` is
    `--take-ownership`)."""
    return _release_action("helm_upgrade", config, chart, name, values, {"namespace": namespace, **options})


def helm_uninstall(config: helm.Config, name: str, disable_hooks: bool = False) -> dict:
    """`helm uninstall`; `disable_hooks=True` is `--no-hooks`, for the test bed without a node,
    where the chart's pre-delete drain Job could never run (the node tier runs it)."""
    from helm_python import _native
    options = json.dumps({"disable_hooks": True}) if disable_hooks else None
    return json.loads(_native.call_string("helm_uninstall", config._raw(), name, options))


def _release_action(function: str, config: helm.Config, chart, name: str, values: dict, options: dict) -> dict:
    # helm-python-sdk 0.2.2's Config.install/upgrade pass a fixed set of options to its C library
    # (helm-c, Helm 4.2.3's SDK), whose options JSON also reads take_ownership and skip_crds and
    # refuses keys it does not know: the same call, with the options the CLI has.
    from helm_python import _native
    handle, ref = config._chart_args(str(chart))
    return json.loads(_native.call_string(function, config._raw(), config._context_arg(None), handle, ref, name,
                                          json.dumps(values), json.dumps(options)))


def find(docs: list[dict], kind: str, name: str | None = None) -> dict:
    matches = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(matches) == 1, f"{kind} {name}: {[d['metadata']['name'] for d in matches]}"
    return matches[0]


def kinds(docs: list[dict]) -> list[str]:
    return sorted(d["kind"] for d in docs)


class Kube:
    """Just enough of a Kubernetes client: token or client-certificate kubeconfigs."""

    def __init__(self, kubeconfig: str):
        config = yaml.safe_load(open(kubeconfig))
        context = next(c["context"] for c in config["contexts"] if c["name"] == config["current-context"])
        cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
        user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
        self.kubeconfig = kubeconfig
        self.server = cluster["server"].rstrip("/")
        self.session = requests.Session()
        self.session.trust_env = False  # else REQUESTS_CA_BUNDLE overrides verify=False
        self._files = []
        if cluster.get("insecure-skip-tls-verify"):
            self.session.verify = False
            urllib3.disable_warnings()
        elif "certificate-authority-data" in cluster:
            self.session.verify = self._file(cluster["certificate-authority-data"])
        elif "certificate-authority" in cluster:
            self.session.verify = cluster["certificate-authority"]
        self.ca = cluster
        if "token" in user:
            self.session.headers["Authorization"] = f"Bearer {user['token']}"
        elif "client-certificate-data" in user:
            self.session.cert = (self._file(user["client-certificate-data"]), self._file(user["client-key-data"]))

    def _file(self, data: str) -> str:
        f = tempfile.NamedTemporaryFile(delete=False)
        f.write(base64.b64decode(data))
        f.close()
        self._files.append(f.name)
        return f.name

    def request(self, method: str, path: str, body=None, content_type="application/json", ok=(200, 201, 202)):
        r = self.session.request(method, self.server + path, json=body if content_type == "application/json" else None,
                                 data=None if content_type == "application/json" else body,
                                 headers={"Content-Type": content_type})
        if ok is not None and r.status_code not in ok:
            raise AssertionError(f"{method} {path}: {r.status_code} {r.text}")
        return r

    def get(self, path: str, ok=(200,)):
        return self.request("GET", path, ok=ok)

    def kubeconfig_for_token(self, token: str, path: pathlib.Path) -> str:
        cluster = {"server": self.server}
        if self.session.verify is False:
            cluster["insecure-skip-tls-verify"] = True
        elif isinstance(self.session.verify, str):
            cluster["certificate-authority"] = self.session.verify
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "c", "cluster": cluster}],
            "users": [{"name": "u", "user": {"token": token}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
            "current-context": "c",
        }))
        return str(path)

    def namespace(self, prefix: str) -> str:
        name = f"{prefix}-{os.getpid()}-{int(time.time() * 1000) % 100000}"
        self.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        return name


def plural(kind: str) -> str:
    return {"ClusterRole": "clusterroles", "ClusterRoleBinding": "clusterrolebindings", "Role": "roles",
            "RoleBinding": "rolebindings", "ServiceAccount": "serviceaccounts", "Secret": "secrets",
            "Service": "services", "Deployment": "deployments", "Namespace": "namespaces",
            "PodDisruptionBudget": "poddisruptionbudgets", "Lease": "leases",
            "CustomResourceDefinition": "customresourcedefinitions"}[kind]


def path_of(doc: dict, namespace: str | None = None) -> str:
    group_version = doc["apiVersion"]
    base = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
    ns = doc["metadata"].get("namespace", namespace)
    cluster_scoped = doc["kind"] in ("ClusterRole", "ClusterRoleBinding", "Namespace", "CustomResourceDefinition")
    prefix = base if cluster_scoped else f"{base}/namespaces/{ns}"
    return f"{prefix}/{plural(doc['kind'])}"


def wait(what: str, check, timeout: float = 180):
    """Polls `check` until it answers something true (returned), or fails after `timeout` s."""
    deadline = time.time() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.5)


def crd_path(name: str) -> str:
    return f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"


@pytest.fixture(scope="session")
def crds_installed(kube) -> None:
    """The CRDs, for tests whose releases leave them to another (crds.enabled=false): created
    from crds/ where absent, never changed where present (the test bed is shared)."""
    for name in CRD_NAMES:
        crd = yaml.safe_load((ROOT / "crds" / f"{name}.yaml").read_text())
        kube.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd, ok=(201, 409))
    deadline = time.time() + 30
    while True:
        conditions = [c for name in CRD_NAMES for c in (kube.get(crd_path(name)).json().get("status") or {}).get("conditions") or []]
        if sum(c["type"] == "Established" and c["status"] == "True" for c in conditions) == len(CRD_NAMES):
            return
        assert time.time() < deadline, f"the CRDs were not Established within 30s: {conditions}"
        time.sleep(0.2)


@pytest.fixture(scope="session")
def kube() -> Kube:
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        pytest.fail("KUBECONFIG is not set: run the tests with scripts/test-chart.sh")
    return Kube(kubeconfig)
