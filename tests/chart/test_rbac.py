"""The chart's RBAC is exactly what the operator needs, proven by running it: the chart is
installed into the test bed (watchNamespace = its namespace, so that variants run side by side),
the operator binary runs with a token of the chart's ServiceAccount (TokenRequest API) against
the ngrok API emulator, and goes through a scenario that uses every call: a missing Secret
(Stalled, event), the Secret appearing (watch → Ready, event), an EventSubscription of the
destination (finalizer, status → Ready with its ngrok id), the Secret deleted again (the same
event again → patched), the subscription deleted and then the destination (each finalizer
removed; the destination's deletion waits while a subscription names it). With each rule's verb
removed in turn, the scenario fails."""

from __future__ import annotations

import concurrent.futures
import copy
import os
import pathlib
import re
import socket
import subprocess
import time

import helm_python as helm
import pytest
import requests

from conftest import CHART, ROOT

TARGET = pathlib.Path(os.environ.get("NEO_TARGET_DIR", ROOT / "target")) / "debug"
API_KEY = "rbac-test-key-0123456789"
STEP = 20  # seconds per scenario step


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def serving(url: str) -> bool:
    """Whether `url` answers 200 (false while nothing listens)."""
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def wait(what, predicate, timeout=STEP):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(what)


def settled(observe, quiet=1.0):
    """A predicate for `wait`: true once `observe()` has returned the same value for `quiet`
    seconds."""
    last = {"value": None, "since": 0.0}

    def predicate():
        value = observe()
        if value != last["value"]:
            last.update(value=value, since=time.time())
            return False
        return time.time() - last["since"] >= quiet

    return predicate


SAMPLE = re.compile(r"^(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)")


def reconciles(metrics: str, **labels) -> float:
    """The operator's finished reconciles (`ngrok_events_operator_reconciles_total`, counted once
    a reconcile's writes are made), summed over the samples whose labels include `labels`."""
    total = 0.0
    for line in requests.get(f"{metrics}/metrics", timeout=5).text.splitlines():
        sample = SAMPLE.match(line)
        if sample and sample["name"] == "ngrok_events_operator_reconciles_total" and all(
                f'{k}="{v}"' in (sample["labels"] or "") for k, v in labels.items()):
            total += float(sample["value"])
    return total


def condition(obj, type_):
    for c in (obj or {}).get("status", {}).get("conditions", []):
        if c["type"] == type_:
            return c
    return None


def scenario(kube, ns: str, metrics: str) -> None:
    base = f"/apis/events.ngrok.io/v1alpha1/namespaces/{ns}/eventdestinations"
    subscriptions = f"/apis/events.ngrok.io/v1alpha1/namespaces/{ns}/eventsubscriptions"
    get = lambda: (lambda r: r.json() if r.status_code == 200 else None)(kube.get(f"{base}/d", ok=None))
    get_subscription = lambda: (lambda r: r.json() if r.status_code == 200 else None)(kube.get(f"{subscriptions}/s", ok=None))
    events = lambda: kube.get(f"/apis/events.k8s.io/v1/namespaces/{ns}/events").json()["items"]
    version = lambda obj: (obj or {}).get("metadata", {}).get("resourceVersion")
    # Idle: no reconcile ends and neither resource changes for a second.
    idle = lambda: settled(lambda: (reconciles(metrics), version(get()), version(get_subscription())))
    kube.request("POST", base, {
        "apiVersion": "events.ngrok.io/v1alpha1", "kind": "EventDestination", "metadata": {"name": "d"},
        "spec": {"target": {"kinesis": {"streamArn": "arn:aws:kinesis:us-east-2:123456789012:stream/s", "auth": {"creds": {
            "accessKeyIdRef": {"name": "aws", "key": "id"}, "secretAccessKeyRef": {"name": "aws", "key": "secret"}}}}}},
    })
    stalled = lambda: (c := condition(get(), "Stalled")) and c["status"] == "True" and c["reason"] == "SecretNotFound"
    wait("Stalled SecretNotFound", stalled)
    wait("a SecretNotFound event", lambda: [e for e in events() if e.get("reason") == "SecretNotFound"])
    # Let the reconciles the operator's own writes trigger pass: from here on only the Secret
    # watch can bring the resource back. Two have stalled it: the one that wrote the Stalled
    # status, and the one that status write triggered.
    wait("the reconcile its own Stalled status triggered",
         lambda: reconciles(metrics, kind="EventDestination", result="SecretNotFound") >= 2)
    wait("the operator idle after stalling", idle())
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "aws", "labels": {"events.ngrok.io/credentials": "true"}}, "stringData": {"id": "AKIA0000000000000000", "secret": "s3cr3t"}}
    kube.request("POST", f"/api/v1/namespaces/{ns}/secrets", secret)
    wait("Ready after the Secret appeared", lambda: (c := condition(get(), "Ready")) and c["status"] == "True")
    wait("a Created event", lambda: [e for e in events() if e.get("reason") == "Created"])
    kube.request("POST", subscriptions, {
        "apiVersion": "events.ngrok.io/v1alpha1", "kind": "EventSubscription", "metadata": {"name": "s"},
        "spec": {"sources": [{"type": "http_request_complete.v0"}], "destinationRefs": [{"name": "d"}]},
    })
    wait("the subscription Ready with its ngrok id",
         lambda: (s := get_subscription()) and (c := condition(s, "Ready")) and c["status"] == "True"
         and (s.get("status", {}).get("id") or "").startswith("esb_"))
    # Let the reconciles the subscription's writes trigger (its own, and its destination's) pass:
    # from here on only the Secret watch can stall the destination again. Three have succeeded:
    # adding the finalizer, the create, and the one the Ready status triggered.
    wait("the reconcile the subscription's Ready status triggered",
         lambda: reconciles(metrics, kind="EventSubscription", result="success") >= 3)
    wait("the operator idle after the subscription", idle())
    kube.request("DELETE", f"/api/v1/namespaces/{ns}/secrets/aws")
    wait("Stalled again", stalled)
    wait("the repeated SecretNotFound event patched into a series",
         lambda: [e for e in events() if e.get("reason") == "SecretNotFound" and (e.get("series") or {}).get("count", 1) >= 2])
    # The destination's deletion waits while a subscription names it: the subscription goes first.
    kube.request("DELETE", f"{subscriptions}/s")
    wait("the subscription deleted (finalizer removed)", lambda: get_subscription() is None)
    kube.request("DELETE", f"{base}/d")
    wait("deleted (finalizer removed)", lambda: get() is None)


def run_variant(kube, tmp: pathlib.Path, label: str, leader: bool, remove: tuple | None) -> str | None:
    """Installs the chart in a fresh namespace, optionally removes one verb, runs the scenario;
    returns None when it passed, else what failed."""
    ns = kube.namespace(f"rbac-{label}")
    # The user ClusterRoles and the CRDs are cluster-wide, and every variant is release "neo":
    # as with one release per team, the variants leave both to one release (here, the test bed's
    # CRDs: the crds_installed fixture).
    values = {"watchNamespace": ns, "leaderElection": {"enabled": leader}, "rbac": {"userRoles": False},
              "crds": {"enabled": False}}
    helm.Config(kubeconfig_path=kube.kubeconfig, namespace=ns).install(str(CHART), "neo", values, namespace=ns)
    if remove:
        role_name, group, resource, verb = remove
        path = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles/{role_name}"
        role = kube.get(path).json()
        rules = []
        for rule in role["rules"]:
            if group in rule["apiGroups"] and resource in rule["resources"]:
                rule = copy.deepcopy(rule)
                rule["verbs"] = [v for v in rule["verbs"] if v != verb]
            if rule["verbs"]:
                rules.append(rule)
        role["rules"] = rules
        kube.request("PUT", path, role)
    token = kube.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/neo-ngrok-events-operator/token",
                         {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}}).json()["status"]["token"]
    kubeconfig = kube.kubeconfig_for_token(token, tmp / f"{ns}.kubeconfig")
    api_port, metrics_port = free_port(), free_port()
    emulator = subprocess.Popen([TARGET / "ngrok-api-emulator", "--listen", f"127.0.0.1:{api_port}", "--api-key", API_KEY,
                                 "--rate-limit-per-minute", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {**os.environ, "KUBECONFIG": kubeconfig, "NGROK_API_KEY": API_KEY, "NGROK_API_URL": f"http://127.0.0.1:{api_port}",
           "WATCH_NAMESPACE": ns, "METRICS_ADDR": f"127.0.0.1:{metrics_port}", "LOG_FORMAT": "text", "POD_NAMESPACE": ns}
    if leader:
        env["LEADER_ELECT"] = "true"
    log = open(tmp / f"{ns}.log", "w")
    operator = subprocess.Popen([TARGET / "ngrok-events-operator", "run"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        metrics = f"http://127.0.0.1:{metrics_port}"
        # Started: serving its probes, or already ended (without list permission it exits at
        # once, and the scenario's first step fails as it would have).
        wait("the operator started", lambda: operator.poll() is not None or serving(f"{metrics}/healthz"))
        scenario(kube, ns, metrics)
        return None
    except TimeoutError as e:
        return f"{label}: {e}"
    except requests.RequestException as e:
        return f"{label}: the operator's metrics: {e}"
    finally:
        operator.terminate()
        emulator.terminate()
        operator.wait(10)
        emulator.wait(10)


@pytest.fixture(scope="module")
def binaries():
    for binary in ("ngrok-events-operator", "ngrok-api-emulator"):
        assert (TARGET / binary).exists(), f"build first: cargo build (missing {TARGET / binary})"


RULES = [("neo-ngrok-events-operator", "events.ngrok.io", "eventdestinations", v) for v in ("list", "watch", "patch")] + [
    ("neo-ngrok-events-operator", "events.ngrok.io", "eventdestinations/status", "patch"),
    *[("neo-ngrok-events-operator", "events.ngrok.io", "eventsubscriptions", v) for v in ("list", "watch", "patch")],
    ("neo-ngrok-events-operator", "events.ngrok.io", "eventsubscriptions/status", "patch"),
    *[("neo-ngrok-events-operator", "", "secrets", v) for v in ("get", "list", "watch")],
    *[("neo-ngrok-events-operator", "events.k8s.io", "events", v) for v in ("create", "patch")],
]
# leases list + watch serve the standbys' watch for a prompt takeover (src/leader/mod.rs); a single
# uncontested replica acquires without them, so this scenario cannot show their need.
LEASE_RULES = [("neo-ngrok-events-operator-leader-election", "coordination.k8s.io", "leases", v)
               for v in ("get", "create", "patch")]


def test_the_rules_suffice_and_each_verb_is_needed(kube, crds_installed, binaries, tmp_path):
    variants = [("full", False, None), ("full-leader", True, None)]
    variants += [(f"no-{r[2].replace('/', '-')}-{r[3]}", False, r) for r in RULES]
    variants += [(f"no-lease-{r[3]}", True, r) for r in LEASE_RULES]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = dict(zip([v[0] for v in variants],
                           pool.map(lambda v: run_variant(kube, tmp_path, v[0], v[1], v[2]), variants)))
    assert results["full"] is None, results["full"]
    assert results["full-leader"] is None, results["full-leader"]
    unneeded = [label for label, failure in results.items() if label.startswith("no-") and failure is None]
    assert not unneeded, f"the scenario passed without these verbs: {unneeded}"
    for label, failure in sorted(results.items()):
        print(f"{label:40} {failure or 'passed'}")
