"""The upgrade from the previous release, on a real node (scripts/test-node.sh), as README's
"Upgrade and uninstall" says: the previous release's chart (or its deploy/) runs the previous
release's image (scripts/build-previous-image.sh builds it from that commit) and manages a
destination of every target, a subscription, an observed and a paused resource; then the chart
of this tree (`helm upgrade --reset-then-reuse-values --take-ownership`) or its deploy/
(`kubectl apply -k`, through an overlay that points it at the emulator) takes over, with the
test image. Proven for each: the CRDs are this tree's, and a field only they know is kept; from
before the upgrade until the new operator has reconciled every resource, ngrok receives no
create, PATCH or DELETE for them; every status is kept (ids, URIs, conditions and their
transition times, drift); the new pod takes over (the lease, with leader election; deploy/'s
one replica is recreated); and a later spec edit is exactly one PATCH.

The node test bed is shared with the other node tests, which run first and leave newer CRDs
behind: these are put back as the previous release's install leaves them (previous_crds_in_place,
helm_owns). Only this test's own ngrok objects are counted in the emulator's request log, and
only one operator runs at a time (each watches the whole cluster).

Environment (set by scripts/test-node.sh): KUBECONFIG, NEO_EMULATOR_URL, NEO_API_KEY,
NEO_PREVIOUS_RELEASE (the previous release's commit), NEO_PREVIOUS_IMAGE (its image, loaded on
the node as localhost/ngrok-events-operator:previous)."""

from __future__ import annotations

import io
import json
import os
import pathlib
import subprocess
import tarfile

import helm_python as helm
import pytest
import requests
import yaml

from conftest import CRD_NAMES, ROOT, crd_path, helm_install, helm_uninstall, helm_upgrade, wait

PREVIOUS_IMAGE = {"repository": "localhost/ngrok-events-operator", "tag": "previous", "pullPolicy": "Never"}
CURRENT_IMAGE = {"repository": "localhost/ngrok-events-operator", "tag": "test", "pullPolicy": "Never"}
OPERATOR_PODS = "app.kubernetes.io/name=ngrok-events-operator"
DEPLOY_NAMESPACE = "ngrok-events-operator"  # deploy/'s, fixed
GROUP = "/apis/events.ngrok.io/v1alpha1"
TIMEOUT = 180


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    names = ("NEO_EMULATOR_URL", "NEO_API_KEY", "NEO_PREVIOUS_RELEASE", "NEO_PREVIOUS_IMAGE")
    missing = [v for v in names if not os.environ.get(v)]
    if missing:
        pytest.fail(f"{missing} not set: run the node tests with scripts/test-node.sh")
    tree = tmp_path_factory.mktemp("previous")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", os.environ["NEO_PREVIOUS_RELEASE"],
                              "charts/ngrok-events-operator", "deploy", "examples"], capture_output=True, timeout=60)
    assert archive.returncode == 0, archive.stderr.decode()
    tarfile.open(fileobj=io.BytesIO(archive.stdout)).extractall(tree, filter="data")
    return os.environ["NEO_EMULATOR_URL"], os.environ["NEO_API_KEY"], tree


def kubectl(kube, *args: str, stdin: str | None = None) -> str:
    out = subprocess.run(["kubectl", "--kubeconfig", kube.kubeconfig, *args], input=stdin, capture_output=True,
                         text=True, timeout=TIMEOUT)
    if out.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)}: {out.stderr}")
    return out.stdout


def ready(pod: dict) -> bool:
    return pod["metadata"].get("deletionTimestamp") is None and any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


def operator_pods(kube, namespace: str | None = None) -> list[dict]:
    where = f"/namespaces/{namespace}" if namespace else ""
    return kube.get(f"/api/v1{where}/pods?labelSelector={OPERATOR_PODS}").json()["items"]


def the_only_operator(kube, namespace: str, image: str) -> dict:
    """The one operator pod of the cluster, Ready, running `image`: the other pods are gone."""
    def check():
        found = operator_pods(kube)
        if len(found) == 1 and ready(found[0]) and found[0]["metadata"]["namespace"] == namespace \
                and found[0]["spec"]["containers"][0]["image"] == image:
            return found[0]
        return None
    return wait(f"one Ready operator pod in {namespace}, with {image}, and no other", check)


# ---- the previous release's CRDs -------------------------------------------------------------

def previous_crds_in_place(kube, folder: pathlib.Path) -> list[dict]:
    """The CRDs as the previous release's install leaves them. Where the shared test bed holds them
    already (newer ones, perhaps another release's), they are replaced by the previous release's,
    with none of the metadata a later release added (Helm's ownership, keep, kubectl's
    last-applied) and no field manager: the previous install (kubectl apply of its deploy/, or
    Helm, see helm_owns) then makes them its own as if it had created them. Where absent, that
    install creates them. Answers the CRDs replaced."""
    replaced = []
    for name in CRD_NAMES:
        live = kube.get(crd_path(name), ok=(200, 404))
        if live.status_code == 200:
            crd = yaml.safe_load((folder / f"{name}.yaml").read_text())
            crd["metadata"] = {"name": name, "resourceVersion": live.json()["metadata"]["resourceVersion"],
                               "managedFields": [{}]}  # [{}] clears them
            kube.request("PUT", crd_path(name), crd)
            replaced.append(crd)
    return replaced


def helm_owns(kube, namespace: str, crds: list[dict]) -> None:
    """Helm 4 creates a chart's crds/ with a server-side apply and applies the release's templates
    with the same field manager, so the first upgrade conflicts with any other owner of the CRDs'
    fields. For the CRDs that previous_crds_in_place replaced (Helm's install leaves existing ones
    alone), the apply that would have created them, by Helm's field manager (its program's name,
    `helm` for the CLI: read from the release's Deployment); then the API server's placeholder
    owner of the fields that were there before the first apply goes."""
    (deployment,) = kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments").json()["items"]
    manager = next(m["manager"] for m in deployment["metadata"]["managedFields"] if m["operation"] == "Apply")
    for crd in crds:
        path = crd_path(crd["metadata"]["name"])
        applied = {**crd, "metadata": {"name": crd["metadata"]["name"]}}
        kube.request("PATCH", f"{path}?fieldManager={manager}&force=true", json.dumps(applied),
                     content_type="application/apply-patch+yaml")
        managed = kube.get(path).json()["metadata"]["managedFields"]
        kube.request("PATCH", path, json.dumps({"metadata": {"managedFields": [
            m for m in managed if m["manager"] != "before-first-apply"]}}), content_type="application/merge-patch+json")
        owners = {m["manager"] for m in kube.get(path).json()["metadata"]["managedFields"] if "f:spec" in m.get("fieldsV1", {})}
        assert owners == {manager}, owners


def previous_crds_served(kube, folder: pathlib.Path) -> None:
    for name in CRD_NAMES:
        want = schema_of(yaml.safe_load((folder / f"{name}.yaml").read_text()))
        wait(f"{name} served with the previous release's schema", lambda: served_schema(kube, name) == want)


def schema_of(crd: dict) -> dict:
    return {v["name"]: v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"]}


def served_schema(kube, name: str) -> dict | None:
    crd = kube.get(crd_path(name)).json()
    established = any(c["type"] == "Established" and c["status"] == "True"
                      for c in (crd.get("status") or {}).get("conditions") or [])
    return schema_of(crd) if established else None


# ---- the resources -----------------------------------------------------------------------------

def example_manifests(folder: pathlib.Path, namespace: str) -> list[dict]:
    """The previous release's examples/ (a destination of every target, with a role and with keys,
    and a subscription), each description marked with the namespace: their ngrok objects are told
    apart from other tests'."""
    docs = [d for path in sorted(folder.glob("*.yaml")) for d in yaml.safe_load_all(path.read_text()) if d]
    for doc in docs:
        doc["metadata"]["namespace"] = namespace
        if "spec" in doc:
            doc["spec"]["description"] = f"{namespace}: {doc['spec']['description']}"
    return docs


def kinesis(namespace: str, name: str, description: str, annotations: dict | None = None) -> dict:
    return {"apiVersion": "events.ngrok.io/v1alpha1", "kind": "EventDestination",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
            "spec": {"description": description, "target": {"kinesis": {
                "streamArn": f"arn:aws:kinesis:us-east-2:123456789012:stream/{name}",
                "auth": {"role": {"roleArn": "arn:aws:iam::123456789012:role/ngrok-events"}}}}}}


def apply(kube, *docs: dict) -> None:
    kubectl(kube, "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(docs)}))


def resources(kube, namespace: str) -> dict[str, dict]:
    items = json.loads(kubectl(kube, "get", "ned,nes", "-n", namespace, "-o", "json"))["items"]
    return {f"{i['kind']}/{i['metadata']['name']}": i for i in items}


def reason(resource: dict) -> str | None:
    conditions = resource.get("status", {}).get("conditions", [])
    return next((c["reason"] for c in conditions if c["type"] == "Ready"), None)


def settled(resource: dict, want: str) -> bool:
    status = resource.get("status", {})
    return status.get("observedGeneration") == resource["metadata"]["generation"] and reason(resource) == want


def create_ngrok_destination(url: str, key: str, description: str) -> str:
    """A destination made in ngrok directly (as with the dashboard), for a resource to observe."""
    r = requests.post(f"{url}/event_destinations", timeout=10,
                      headers={"Authorization": f"Bearer {key}", "Ngrok-Version": "2"},
                      json={"description": description, "format": "json", "target": {"kinesis": {
                          "stream_arn": "arn:aws:kinesis:us-east-2:123456789012:stream/observed",
                          "auth": {"role": {"role_arn": "arn:aws:iam::123456789012:role/ngrok-events"}}}}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def every_kind_managed(kube, url: str, key: str, previous: pathlib.Path, namespace: str) -> None:
    """Applies the examples, an observed destination (adopting one made in ngrok, whose description
    differs) and a paused one (created, then paused), and waits until each has settled."""
    examples = example_manifests(previous / "examples", namespace)
    apply(kube, *examples)
    expected = {f"{d['kind']}/{d['metadata']['name']}": "Synced" for d in examples if d["kind"] != "Secret"}
    observed_id = create_ngrok_destination(url, key, f"{namespace}: observed (as made in the dashboard)")
    apply(kube, kinesis(namespace, "observed", f"{namespace}: observed", {
        "events.ngrok.io/management": "observe", "events.ngrok.io/adopt-id": observed_id}))
    apply(kube, kinesis(namespace, "paused", f"{namespace}: paused"))
    expected |= {"EventDestination/observed": "Observing", "EventDestination/paused": "Synced"}
    wait_settled(kube, namespace, expected)
    kubectl(kube, "annotate", "ned", "paused", "-n", namespace, "events.ngrok.io/paused=true")
    expected["EventDestination/paused"] = "Paused"
    found = wait_settled(kube, namespace, expected)
    assert found["EventDestination/observed"]["status"]["drift"], "the observed destination differs from its spec"


def wait_settled(kube, namespace: str, expected: dict[str, str]) -> dict[str, dict]:
    def check():
        found = resources(kube, namespace)
        return found if {ref: reason(found.get(ref, {})) for ref in expected} == expected \
            and all(settled(found[ref], want) for ref, want in expected.items()) else None
    try:
        return wait(f"{expected} in {namespace}", check)
    except AssertionError:
        print({ref: r.get("status") for ref, r in resources(kube, namespace).items()})
        raise


def kept_status(resource: dict) -> dict:
    """What an upgrade must not change: every field the operator wrote, but the conditions' messages
    (wording may improve) and any field a new version adds."""
    status = dict(resource["status"])
    status["conditions"] = sorted((c["type"], c["status"], c["reason"], c["lastTransitionTime"], c.get("observedGeneration"))
                                  for c in status["conditions"])
    return status


# ---- what ngrok received -------------------------------------------------------------------------

def requests_since(url: str, mark: int) -> list[dict]:
    return [r for r in requests.get(f"{url}/__admin/requests", timeout=30).json() if r["seq"] > mark]


def last_seq(url: str) -> int:
    return max((r["seq"] for r in requests.get(f"{url}/__admin/requests", timeout=30).json()), default=-1)


def writes_for(log: list[dict], namespace: str, ids: set[str]) -> list[str]:
    """The creates, PATCHes and DELETEs of this test's ngrok objects: by id, and, for creates, by the
    namespace that marks every description."""
    def ours(r: dict) -> bool:
        if r["method"] == "POST":
            return str((r.get("body") or {}).get("description", "")).startswith(f"{namespace}:")
        return r["path"].rsplit("/", 1)[-1] in ids
    return [f"{r['method']} {r['path']} -> {r['status']}" for r in log
            if r["method"] in ("POST", "PATCH", "PUT", "DELETE") and r["path"].startswith("/event_") and ours(r)]


def every_resource_reconciled(kube, pod: dict) -> bool:
    """The pod's reconciles (not those it declined as a standby) cover every resource of the
    cluster: it reconciles each once when it starts, and counts a pass once its ngrok calls are
    answered."""
    ip = pod["status"].get("podIP")
    try:
        metrics = requests.get(f"http://{ip}:8080/metrics", timeout=5).text
    except requests.RequestException:
        return False
    done: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("ngrok_events_operator_reconciles_total{") and 'result="NotLeader"' not in line:
            kind = line.split('kind="', 1)[1].split('"', 1)[0]
            done[kind] = done.get(kind, 0) + float(line.rsplit(" ", 1)[1])
    counts = {"EventDestination": len(kube.get(f"{GROUP}/eventdestinations").json()["items"]),
              "EventSubscription": len(kube.get(f"{GROUP}/eventsubscriptions").json()["items"])}
    return all(done.get(kind, 0) >= count for kind, count in counts.items())


# ---- the proof -----------------------------------------------------------------------------------

def upgraded_without_a_write(kube, url: str, namespace: str, before: dict[str, dict], mark: int, pod: dict) -> set[str]:
    """After the upgrade: the new pod reconciled everything, and ngrok saw no write for this test's
    objects since `mark`; every status is as it was. Answers the ids."""
    wait("the new operator to reconcile every resource", lambda: every_resource_reconciled(kube, pod))
    ids = {r["status"]["id"] for r in before.values()}
    assert writes_for(requests_since(url, mark), namespace, ids) == [], "no ngrok write across the upgrade"
    after = resources(kube, namespace)
    assert sorted(after) == sorted(before)
    for ref, resource in before.items():
        assert after[ref]["metadata"]["generation"] == resource["metadata"]["generation"], ref
        new = kept_status(after[ref])
        assert {k: new.get(k) for k in kept_status(resource)} == kept_status(resource), ref
    return ids


def without_cel_rules(schema):
    """The schema without its `x-kubernetes-validations`: the test bed's 1.20 server does not
    know them and drops them (tests/chart/test_crd_server_136.py proves them on 1.36)."""
    if isinstance(schema, dict):
        return {k: without_cel_rules(v) for k, v in schema.items() if k != "x-kubernetes-validations"}
    if isinstance(schema, list):
        return [without_cel_rules(v) for v in schema]
    return schema


def crds_are_this_trees(kube) -> None:
    for name in CRD_NAMES:
        want = without_cel_rules(schema_of(yaml.safe_load((ROOT / "crds" / f"{name}.yaml").read_text())))
        wait(f"{name} served with this tree's schema", lambda: without_cel_rules(served_schema(kube, name)) == want)


def new_field_kept_and_one_patch_per_edit(kube, url: str, namespace: str, ids: set[str]) -> None:
    """A source filter (a field the previous CRD did not have, which it would have pruned) and a
    description edit: each read back, each exactly one PATCH, and nothing else."""
    mark = last_seq(url)
    sources = resources(kube, namespace)["EventSubscription/http-traffic"]["spec"]["sources"]
    assert sources[0]["type"] == "http_request_complete.v0"
    sources[0]["filter"] = "ev.http.response.status_code >= 500"
    kubectl(kube, "patch", "nes", "http-traffic", "-n", namespace, "--type=merge", "-p", json.dumps({"spec": {"sources": sources}}))
    kubectl(kube, "patch", "ned", "kinesis-role", "-n", namespace, "--type=merge",
            "-p", json.dumps({"spec": {"description": f"{namespace}: edited after the upgrade"}}))
    found = resources(kube, namespace)
    assert found["EventSubscription/http-traffic"]["spec"]["sources"][0].get("filter") == sources[0]["filter"], "pruned"
    found = wait_settled(kube, namespace, {"EventSubscription/http-traffic": "Synced", "EventDestination/kinesis-role": "Synced"})
    subscription, destination = (found[r]["status"]["id"] for r in ("EventSubscription/http-traffic", "EventDestination/kinesis-role"))
    assert sorted(writes_for(requests_since(url, mark), namespace, ids)) == sorted(
        [f"PATCH /event_subscriptions/{subscription} -> 200", f"PATCH /event_destinations/{destination} -> 200"])
    stored = requests.get(f"{url}/__admin/objects/{subscription}", timeout=10).json()
    assert any(s.get("filter") == sources[0]["filter"] for s in stored["sources"]), stored
    stored = requests.get(f"{url}/__admin/objects/{destination}", timeout=10).json()
    assert stored["description"] == f"{namespace}: edited after the upgrade"


def cleaned_up(kube, namespace: str) -> None:
    """This test's resources deleted while the operator still runs (each finalizer is done with),
    and their namespace."""
    kubectl(kube, "delete", "ned,nes", "--all", "-n", namespace, f"--timeout={TIMEOUT}s")
    kube.request("DELETE", f"/api/v1/namespaces/{namespace}")


@pytest.fixture(autouse=True)
def one_operator_at_a_time(kube):
    """Every operator watches the whole cluster: another one's writes would mix with this test's."""
    wait("no operator pod left by another test", lambda: not operator_pods(kube))



def test_helm_upgrade_from_the_previous_release(kube, env):
    url, key, previous = env
    namespace = kube.namespace("node-upgrade")
    release = namespace.replace("node-upgrade", "up")  # unique: cluster-scoped names derive from it
    teams = kube.namespace("node-upgrade-team")
    config = helm.Config(kubeconfig_path=kube.kubeconfig, namespace=namespace)
    values = {"apiUrl": url, "credentials": {"apiKey": key}, "driftInterval": "1h", "leaderElection": {"enabled": True}}
    lease = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/ngrok-events-operator"

    replaced = previous_crds_in_place(kube, previous / "charts" / "ngrok-events-operator" / "crds")
    helm_install(config, release, {**values, "image": PREVIOUS_IMAGE}, namespace, chart=previous / "charts" / "ngrok-events-operator")
    try:
        helm_owns(kube, namespace, replaced)
        previous_crds_served(kube, previous / "charts" / "ngrok-events-operator" / "crds")
        old = the_only_operator(kube, namespace, "localhost/ngrok-events-operator:previous")
        wait("the previous operator holding the lease", lambda: lease_holder(kube, lease).startswith(old["metadata"]["name"]))
        every_kind_managed(kube, url, key, previous, teams)
        before, mark = resources(kube, teams), last_seq(url)

        # README's "Upgrade", once from 0.1.0: --reset-then-reuse-values --take-ownership (and the
        # test image in place of the published one). The CRDs, now templates, are upgraded too.
        helm_upgrade(config, release, {"image": CURRENT_IMAGE}, namespace, reset_then_reuse_values=True, take_ownership=True)
        new = the_only_operator(kube, namespace, "localhost/ngrok-events-operator:test")
        wait("the lease handed over to the new pod", lambda: lease_holder(kube, lease).startswith(new["metadata"]["name"]))
        crds_are_this_trees(kube)
        ids = upgraded_without_a_write(kube, url, teams, before, mark, new)
        new_field_kept_and_one_patch_per_edit(kube, url, teams, ids)
    finally:
        try:
            cleaned_up(kube, teams)
        finally:
            # --no-hooks: this test's resources are gone already, and the drain hook (tested by
            # test_node_e2e.py) would take every other test's resources out of the operator's
            # hands too (the test bed is shared).
            helm_uninstall(config, release, disable_hooks=True)
    kube.request("DELETE", f"/api/v1/namespaces/{namespace}")


def lease_holder(kube, path: str) -> str:
    r = kube.get(path, ok=(200, 404))
    return (r.json()["spec"].get("holderIdentity") if r.status_code == 200 else None) or ""


def deploy_overlay(folder: pathlib.Path, deploy: pathlib.Path, url: str, image: str | None = None) -> pathlib.Path:
    """A user's overlay of deploy/: the API URL (deploy/ calls api.ngrok.com; here the emulator)
    and, for the previous release, its image in place of the published one."""
    folder.mkdir()
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(deploy, folder)],  # kustomize takes no absolute path
        "patches": [{"target": {"kind": "Deployment"}, "patch": yaml.safe_dump({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "operator"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "operator", "env": [{"name": "NGROK_API_URL", "value": url}]}]}}}})}],
    }
    if image:
        published = yaml.safe_load((deploy.parent / "charts" / "ngrok-events-operator" / "values.yaml").read_text())["image"]
        name, tag = image.rsplit(":", 1)
        kustomization["images"] = [{"name": published["repository"], "newName": name, "newTag": tag}]
    (folder / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return folder


def published_image() -> str:
    """The image deploy/ names: the chart's default, which the test image carries too."""
    docs = yaml.safe_load_all((ROOT / "deploy" / "operator.yaml").read_text())
    (deployment,) = [d for d in docs if d and d["kind"] == "Deployment"]
    return deployment["spec"]["template"]["spec"]["containers"][0]["image"]


def test_deploy_upgrade_from_the_previous_release(kube, env, tmp_path):
    url, key, previous = env
    teams = kube.namespace("node-upgrade-deploy")
    previous_deploy = deploy_overlay(tmp_path / "previous", previous / "deploy", url, "localhost/ngrok-events-operator:previous")
    current_deploy = deploy_overlay(tmp_path / "current", ROOT / "deploy", url)

    previous_crds_in_place(kube, previous / "deploy")
    kubectl(kube, "apply", "-k", str(previous_deploy))
    previous_crds_served(kube, previous / "deploy")
    secret = kubectl(kube, "create", "secret", "generic", "ngrok-api-key", "-n", DEPLOY_NAMESPACE,
                     f"--from-literal=api-key={key}", "--dry-run=client", "-o", "json")
    kubectl(kube, "apply", "-f", "-", stdin=secret)
    try:
        old = the_only_operator(kube, DEPLOY_NAMESPACE, "localhost/ngrok-events-operator:previous")
        every_kind_managed(kube, url, key, previous, teams)
        before, mark = resources(kube, teams), last_seq(url)

        # README's "Upgrade" for plain manifests: kubectl apply -k of deploy/ (through the overlay).
        kubectl(kube, "apply", "-k", str(current_deploy))
        new = the_only_operator(kube, DEPLOY_NAMESPACE, published_image())  # one replica: Recreate
        assert new["metadata"]["name"] != old["metadata"]["name"]
        crds_are_this_trees(kube)
        ids = upgraded_without_a_write(kube, url, teams, before, mark, new)
        new_field_kept_and_one_patch_per_edit(kube, url, teams, ids)
    finally:
        try:
            cleaned_up(kube, teams)
        finally:
            kubectl(kube, "delete", "-f", str(ROOT / "deploy" / "operator.yaml"), "--wait=false", "--ignore-not-found")
        kubectl(kube, "delete", "secret", "ngrok-api-key", "-n", DEPLOY_NAMESPACE, "--ignore-not-found")
