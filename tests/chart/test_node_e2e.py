"""End to end on a real node (scripts/test-node.sh): the chart installed with Helm's own SDK runs
the test image as a pod under the chart's security settings; the pod becomes Ready through its
own probes and reconciles the examples against the ngrok emulator; its logs are JSON; /metrics
answers through the chart's Service; a rotated operator-wide key is picked up; a rolling
`helm upgrade` to two replicas hands the lease over without a duplicate create; `helm uninstall`
leaves the resources and their ngrok objects; and `kubectl apply -k deploy/` runs as well. The
node test bed starts without CRDs: `helm install` creates them (chart templates) as the release's,
and `helm uninstall` keeps them (helm.sh/resource-policy: keep).

Environment (set by scripts/test-node.sh): KUBECONFIG of a node test bed, NEO_EMULATOR_URL
(reachable from pods), NEO_API_KEY (the emulator's key), NEO_TEST_IMAGE."""

from __future__ import annotations

import json
import os
import subprocess
import time

import helm_python as helm
import pytest
import requests

from conftest import CHART, CRD_NAMES, ROOT, crd_path, find, render, wait

IMAGE = {"repository": "localhost/ngrok-events-operator", "tag": "test", "pullPolicy": "Never"}
RELEASE = "neo"
TIMEOUT = 180


@pytest.fixture(scope="module")
def env():
    missing = [v for v in ("NEO_EMULATOR_URL", "NEO_API_KEY", "NEO_TEST_IMAGE") if not os.environ.get(v)]
    if missing:
        pytest.fail(f"{missing} not set: run the node tests with scripts/test-node.sh")
    return os.environ["NEO_EMULATOR_URL"], os.environ["NEO_API_KEY"]


def kubectl(kube, *args: str, check: bool = True) -> str:
    out = subprocess.run(["kubectl", "--kubeconfig", kube.kubeconfig, *args], capture_output=True, text=True, timeout=TIMEOUT)
    if check and out.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {out.stderr}")
    return out.stdout


def uninstall(kube, config: helm.Config, name: str, namespace: str) -> float:
    """`helm uninstall` as the CLI runs it: hooks waited for up to 5 minutes (the SDK's own
    default is far shorter). Returns how long it took; on failure, says what the drain did."""
    start = time.time()
    try:
        config.uninstall(name, timeout=300)
    except Exception as e:
        state = kubectl(kube, "get", "jobs,pods", "-n", namespace, "-o", "wide", check=False)
        logs = kubectl(kube, "logs", "-n", namespace, f"job/{name}-ngrok-events-operator-drain", "--tail=40", check=False)
        raise AssertionError(f"helm uninstall {name}: {e}\n{state}\ndrain logs:\n{logs}") from e
    return time.time() - start


def pods(kube, namespace: str, selector: str) -> list[dict]:
    return kube.get(f"/api/v1/namespaces/{namespace}/pods?labelSelector={selector}").json()["items"]


def ready(pod: dict) -> bool:
    conditions = pod.get("status", {}).get("conditions", [])
    return pod["metadata"].get("deletionTimestamp") is None and any(
        c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def ready_pods(kube, namespace: str, selector: str, count: int) -> list[dict]:
    def check():
        found = pods(kube, namespace, selector)
        return found if len(found) == count and all(ready(p) for p in found) else None
    try:
        return wait(f"{count} Ready pod(s) {selector} in {namespace}", check)
    except AssertionError:
        print(kubectl(kube, "describe", "pods", "-n", namespace, "-l", selector, check=False))
        raise


def emulator_creates(url: str) -> int:
    counts = requests.get(f"{url}/__admin/counts", timeout=10).json()
    return sum(c["count"] for c in counts
               if c["method"] == "POST" and c["route"].startswith("/event_") and 200 <= (c["status"] or 0) < 300)


def emulator_writes(url: str) -> int:
    """Writes (POST, PATCH, DELETE) the emulator answered for ngrok's event routes."""
    counts = requests.get(f"{url}/__admin/counts", timeout=10).json()
    return sum(c["count"] for c in counts
               if c["method"] in ("POST", "PATCH", "DELETE") and c["route"].startswith("/event_"))


def emulator_has(url: str, object_id: str) -> bool:
    return requests.get(f"{url}/__admin/objects/{object_id}", timeout=10).status_code == 200


def holding_pod(holder: str | None, candidates: list[dict]) -> str | None:
    """The pod whose replica holds the lease (the identity is the pod's name and a suffix)."""
    names = [p["metadata"]["name"] for p in candidates]
    return next((n for n in names if holder and (holder == n or holder.startswith(n + "-"))), None)


def lease_holder(kube, namespace: str, name: str) -> str | None:
    r = kube.get(f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}", ok=(200, 404))
    return r.json()["spec"].get("holderIdentity") if r.status_code == 200 else None


def examples_ready(kube, namespace: str) -> dict[str, str]:
    kubectl(kube, "wait", "-n", namespace, "--for=condition=Ready", "ned,nes", "--all", f"--timeout={TIMEOUT}s")
    items = json.loads(kubectl(kube, "get", "ned,nes", "-n", namespace, "-o", "json"))["items"]
    return {f"{i['kind']}/{i['metadata']['name']}": i["status"]["id"] for i in items}


def test_helm_install_upgrade_and_uninstall_on_a_node(kube, env):
    url, key = env
    namespace, examples = kube.namespace("node-e2e"), kube.namespace("node-examples")
    config = helm.Config(kubeconfig_path=kube.kubeconfig, namespace=namespace)
    values = {"image": IMAGE, "apiUrl": url, "credentials": {"apiKey": key}, "driftInterval": "1h"}
    docs = render(values, name=RELEASE, namespace=namespace)
    deployment = find(docs, "Deployment")["metadata"]["name"]
    service = find(docs, "Service")["metadata"]["name"]
    selector = "app.kubernetes.io/instance=" + RELEASE

    config.install(str(CHART), RELEASE, values, namespace=namespace)
    for crd in CRD_NAMES:  # created by the install, as the release's
        annotations = kube.get(crd_path(crd)).json()["metadata"]["annotations"]
        assert annotations["meta.helm.sh/release-name"] == RELEASE and annotations["meta.helm.sh/release-namespace"] == namespace
        assert annotations["helm.sh/resource-policy"] == "keep"
    # Ready through its own readiness probe (/readyz on the metrics port).
    (pod,) = ready_pods(kube, namespace, selector, 1)
    container = pod["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0, "the liveness probe never failed"
    # The process runs as 65532, with no capabilities, on a read-only root filesystem.
    pid = subprocess.run(["pgrep", "-f", "-n", "^/usr/local/bin/ngrok-events-operator run"],
                         capture_output=True, text=True).stdout.strip()
    status = open(f"/proc/{pid}/status").read()
    assert "\nUid:\t65532\t65532\t65532\t65532" in status and "\nGid:\t65532\t" in status
    assert "\nCapEff:\t0000000000000000" in status and "\nCapBnd:\t0000000000000000" in status
    mounts = open(f"/proc/{pid}/mounts").read().splitlines()
    assert any(m.split()[1] == "/" and "ro" in m.split()[3].split(",") for m in mounts)

    # The examples become Ready through it (in-cluster config, projected token, mounted key).
    kubectl(kube, "apply", "-n", examples, "-f", str(ROOT / "examples"))
    ids = examples_ready(kube, examples)
    assert ids and all(emulator_has(url, i) for i in ids.values())
    creates = emulator_creates(url)
    assert creates == len(ids)

    # JSON logs, every line.
    logs = [line for line in kubectl(kube, "logs", "-n", namespace, pod["metadata"]["name"]).splitlines() if line]
    assert logs and all(json.loads(line)["level"] for line in logs)

    # /metrics through the chart's Service (its ClusterIP, through kube-proxy).
    svc = kube.get(f"/api/v1/namespaces/{namespace}/services/{service}").json()["spec"]
    port = next(p["port"] for p in svc["ports"] if p["name"] == "metrics")
    metrics = wait("metrics through the Service", lambda: _get(f"http://{svc['clusterIP']}:{port}/metrics"))
    assert 'ngrok_events_operator_resources{kind="EventDestination",state="ready"}' in metrics

    # Rotating the operator-wide key (credentials.apiKey): the chart's checksum restarts the pod,
    # which uses the new key: a wrong one is refused by ngrok, the right one works again.
    config.upgrade(str(CHART), RELEASE, {**values, "credentials": {"apiKey": "rotated-wrong-key"}}, namespace=namespace)
    wait("the pod restarted with the rotated key", lambda: current_pod(kube, namespace, selector))
    _apply_probe(kube, examples, "key-probe")
    wait("the probe destination refused with the rotated key", lambda: _reason(kube, examples, "key-probe") == "NgrokAuthenticationFailed")
    config.upgrade(str(CHART), RELEASE, values, namespace=namespace)
    wait("the pod restarted with the right key", lambda: current_pod(kube, namespace, selector))
    kubectl(kube, "delete", "ned", "-n", examples, "key-probe", f"--timeout={TIMEOUT}s")
    _apply_probe(kube, examples, "key-probe-ok")
    wait("a destination Ready with the right key again", lambda: _reason(kube, examples, "key-probe-ok") == "Synced")
    creates = emulator_creates(url)

    # Two replicas with leader election, then a rolling update: the lease moves to a new pod,
    # and a destination applied meanwhile is created exactly once.
    two = {**values, "replicaCount": 2}
    config.upgrade(str(CHART), RELEASE, two, namespace=namespace)
    before = ready_pods(kube, namespace, selector, 2)
    lease = two.get("leaderElection", {}).get("leaseName", "ngrok-events-operator")
    holder = wait("a lease holder", lambda: lease_holder(kube, namespace, lease))
    assert holding_pod(holder, before), holder
    config.upgrade(str(CHART), RELEASE, {**two, "logLevel": "debug"}, namespace=namespace)
    _apply_probe(kube, examples, "during-rollout")
    after = wait("two new Ready pods", lambda: (lambda ps: ps if len(ps) == 2 and all(ready(p) for p in ps)
                                                and not {p["metadata"]["name"] for p in ps} & {p["metadata"]["name"] for p in before}
                                                else None)(pods(kube, namespace, selector)))
    new_holder = wait("the lease held by a new pod",
                      lambda: holding_pod(h := lease_holder(kube, namespace, lease), after) and h)
    assert new_holder != holder
    wait("the destination applied during the rollout Ready", lambda: _reason(kube, examples, "during-rollout") == "Synced")
    examples_ready(kube, examples)
    assert emulator_creates(url) == creates + 1, "no duplicate create during the handover"

    # helm uninstall: its pre-delete hook drains (uninstall.drain.policy Retain by default): the
    # operator is stopped and every finalizer removed; the CRDs (keep), the resources and their
    # ngrok objects stay. Deleting the namespace then ends at once, and deletes nothing in ngrok.
    writes = emulator_writes(url)
    took = uninstall(kube, config, RELEASE, namespace)
    print(f"helm uninstall with the Retain drain took {took:.1f}s")
    wait("the operator's pods gone", lambda: not pods(kube, namespace, selector))
    for crd in CRD_NAMES:
        assert kube.get(crd_path(crd)).json()["metadata"].get("deletionTimestamp") is None
    for ref, object_id in ids.items():
        kind, name = ref.split("/")
        obj = json.loads(kubectl(kube, "get", kind.lower(), "-n", examples, name, "-o", "json"))
        assert "events.ngrok.io/cleanup" not in obj["metadata"].get("finalizers", [])
        assert emulator_has(url, object_id)
    kubectl(kube, "delete", "namespace", examples, f"--timeout={TIMEOUT}s")
    assert all(emulator_has(url, object_id) for object_id in ids.values())
    assert emulator_writes(url) == writes, "the drain and the namespace's deletion wrote nothing to ngrok"


def test_uninstall_with_the_delete_drain_deletes_every_ngrok_object_first(kube, env):
    """uninstall.drain.policy Delete: the hook deletes every resource while the operator runs,
    which deletes their ngrok objects; the namespace then goes at once."""
    url, key = env
    namespace, examples = kube.namespace("node-drain"), kube.namespace("node-drained")
    config = helm.Config(kubeconfig_path=kube.kubeconfig, namespace=namespace)
    values = {"image": IMAGE, "apiUrl": url, "credentials": {"apiKey": key}, "driftInterval": "1h",
              "watchNamespace": examples, "crds": {"enabled": False},
              "uninstall": {"drain": {"policy": "Delete", "timeoutSeconds": 120}}}
    config.install(str(CHART), "drain", values, namespace=namespace)
    ready_pods(kube, namespace, "app.kubernetes.io/instance=drain", 1)
    kubectl(kube, "apply", "-n", examples, "-f", str(ROOT / "examples" / "kinesis-role.yaml"))
    ids = examples_ready(kube, examples)
    assert ids and all(emulator_has(url, i) for i in ids.values())
    took = uninstall(kube, config, "drain", namespace)
    print(f"helm uninstall with the Delete drain took {took:.1f}s")
    assert not json.loads(kubectl(kube, "get", "ned,nes", "-n", examples, "-o", "json"))["items"]
    assert not any(emulator_has(url, i) for i in ids.values()), "deleted in ngrok by the operator"
    kubectl(kube, "delete", "namespace", examples, f"--timeout={TIMEOUT}s")


def test_plain_manifests_run_on_the_node(kube, env):
    """`kubectl apply -k deploy/` as README's "With plain manifests" says, image as published
    (the test image carries the chart's default name too): the pod starts and becomes Ready."""
    url, key = env
    kubectl(kube, "apply", "-k", str(ROOT / "deploy"))
    namespace = "ngrok-events-operator"
    kubectl(kube, "create", "secret", "generic", "ngrok-api-key", "-n", namespace, f"--from-literal=api-key={key}")
    try:
        ready_pods(kube, namespace, "app.kubernetes.io/name=ngrok-events-operator", 1)
    finally:
        kubectl(kube, "delete", "-f", str(ROOT / "deploy" / "operator.yaml"), "--wait=false", check=False)


def _get(url: str) -> str | None:
    try:
        r = requests.get(url, timeout=5)
        return r.text if r.status_code == 200 else None
    except requests.RequestException:
        return None


def current_pod(kube, namespace: str, selector: str) -> dict | None:
    """The one pod, Ready, started from the Deployment's current template (its credentials
    checksum), once the previous one is gone."""
    (deployment,) = kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments?labelSelector={selector}").json()["items"]
    want = deployment["spec"]["template"]["metadata"]["annotations"].get("checksum/credentials")
    found = pods(kube, namespace, selector)
    if len(found) == 1 and ready(found[0]) and found[0]["metadata"]["annotations"].get("checksum/credentials") == want:
        return found[0]
    return None


def _apply_probe(kube, namespace: str, name: str):
    manifest = {
        "apiVersion": "events.ngrok.io/v1alpha1", "kind": "EventDestination",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"description": name, "target": {"kinesis": {
            "streamArn": f"arn:aws:kinesis:us-east-2:123456789012:stream/{name}",
            "auth": {"role": {"roleArn": "arn:aws:iam::123456789012:role/example"}}}}},
    }
    subprocess.run(["kubectl", "--kubeconfig", kube.kubeconfig, "apply", "-f", "-"], input=json.dumps(manifest),
                   text=True, check=True, capture_output=True, timeout=60)


def _reason(kube, namespace: str, name: str) -> str | None:
    r = kube.get(f"/apis/events.ngrok.io/v1alpha1/namespaces/{namespace}/eventdestinations/{name}", ok=(200, 404))
    if r.status_code != 200:
        return None
    conditions = r.json().get("status", {}).get("conditions", [])
    return next((c["reason"] for c in conditions if c["type"] == "Ready"), None)
