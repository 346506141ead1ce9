"""The CRDs on a current Kubernetes (1.36) and on the test bed's 1.20.

Kubernetes 1.36: the apiextensions-apiserver that `testbed/install.sh --crd-server-1.36` builds
from Debian sid (CRDs and custom resources only, on its own etcd; no Namespaces or Secrets). On
it: the CRDs are accepted, Established and structural; every EventDestination and
EventSubscription of examples/ and of the README applies with `kubectl apply --server-side`; an
unknown field is refused by strict field validation; every CEL rule (`x-kubernetes-validations`)
refuses a bad resource at apply time with its message; and the status bodies the operator writes
(server-side apply of the status subresource, tests/status_bodies.rs) apply without a field
pruned.

Kubernetes 1.20 (the shared test bed, KUBECONFIG): the same CRDs are accepted (the server drops
the CEL rules; kubectl's client-side validation needs --validate=false for them, the chart cuts
them out for such a server), and a resource the CEL rules refuse is accepted: the operator then
stalls it (tests/reconcile.rs a_spec_over_ngrok_byte_limits_stalls_before_any_call, and
src/desired*.rs's unit tests for each limit).

The 1.36 tests skip only outside CI (CI unset, or 0/false) when the server is not built; in CI
they fail when it is missing (scripts/test.sh installs it)."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import tempfile
import time

import pytest
import requests
import yaml

from conftest import CRD_NAMES, ROOT, Kube, crd_path

KINDS = ("EventDestination", "EventSubscription")
GROUP_VERSION = "events.ngrok.io/v1alpha1"
PLURALS = {"EventDestination": "eventdestinations", "EventSubscription": "eventsubscriptions"}


def crd_server_binary() -> pathlib.Path:
    """Where testbed/install.sh --crd-server-1.36 puts the server (its $CACHE)."""
    cache = os.environ.get("NGROK_TESTBED_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "ngrok-events-operator", "testbed")
    return pathlib.Path(cache) / "crd-server-1.36" / "bin" / "apiextensions-apiserver"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail_of_log(p: subprocess.Popen) -> str:
    """The last lines of a process's log (its stdout is a file of the fixture's directory)."""
    path = getattr(p, "log_path", None)
    return "".join(path.read_text(errors="replace").splitlines(keepends=True)[-5:]) if path else ""


def wait_for(what: str, check, timeout: float = 60.0, processes=()):
    deadline = time.time() + timeout
    while True:
        for p in processes:
            if p.poll() is not None:
                raise AssertionError(f"{what}: {p.args[0]} exited with {p.returncode}: {tail_of_log(p)}")
        result = check()
        if result:
            return result
        assert time.time() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.2)


def openssl(*args: str, cwd: pathlib.Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def kube136():
    """etcd and the 1.36 CRD server on loopback, as /work/shared/notes/crd-server-1.36.md step 5
    says; a client certificate of group system:masters from a throwaway CA."""
    binary = crd_server_binary()
    if not binary.exists():
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"{binary} is missing: CI installs it with testbed/install.sh --crd-server-1.36")
        pytest.skip(f"no 1.36 CRD server at {binary} (testbed/install.sh --crd-server-1.36 builds it)")
    work = pathlib.Path(tempfile.mkdtemp(prefix="crd136-"))
    processes: list[subprocess.Popen] = []
    try:
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=crd136-ca",
                "-keyout", "ca.key", "-out", "ca.crt", cwd=work)
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/O=system:masters/CN=crd136-admin",
                "-keyout", "admin.key", "-out", "admin.csr", cwd=work)
        openssl("x509", "-req", "-in", "admin.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "1", "-out", "admin.crt", cwd=work)
        # A kubeconfig to a loopback port where nothing listens: the server needs one (else it
        # looks for an in-cluster config) and never calls it for system:masters.
        nowhere = work / "nowhere.kubeconfig"
        nowhere.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "nowhere", "cluster": {"server": f"https://127.0.0.1:{free_port()}",
                                                         "insecure-skip-tls-verify": True}}],
            "users": [{"name": "nowhere", "user": {}}],
            "contexts": [{"name": "nowhere", "context": {"cluster": "nowhere", "user": "nowhere"}}],
            "current-context": "nowhere"}))
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        etcd_url, peer_url = f"http://127.0.0.1:{etcd_port}", f"http://127.0.0.1:{peer_port}"
        etcd_log = open(work / "etcd.log", "w")
        processes.append(subprocess.Popen([
            shutil.which("etcd") or "etcd", "--name=crd136", f"--data-dir={work / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=crd136={peer_url}"], stdout=etcd_log, stderr=subprocess.STDOUT))
        processes[-1].log_path = work / "etcd.log"

        def etcd_healthy():
            try:
                return requests.get(f"{etcd_url}/health", timeout=2).json().get("health") == "true"
            except (requests.RequestException, ValueError):
                return False
        wait_for("etcd healthy", etcd_healthy, processes=processes)
        server_log = open(work / "apiextensions-apiserver.log", "w")
        processes.append(subprocess.Popen([
            str(binary), f"--etcd-servers={etcd_url}", f"--secure-port={api_port}", "--bind-address=127.0.0.1",
            f"--cert-dir={work / 'serving'}", f"--client-ca-file={work / 'ca.crt'}",
            f"--authentication-kubeconfig={nowhere}", "--authentication-skip-lookup",
            f"--authorization-kubeconfig={nowhere}", f"--kubeconfig={nowhere}",
            "--disable-admission-plugins=NamespaceLifecycle,MutatingAdmissionPolicy,MutatingAdmissionWebhook,"
            "ValidatingAdmissionPolicy,ValidatingAdmissionWebhook"], stdout=server_log, stderr=subprocess.STDOUT))
        processes[-1].log_path = work / "apiextensions-apiserver.log"
        kubeconfig = work / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "crd136", "cluster": {"server": f"https://127.0.0.1:{api_port}",
                                                        "insecure-skip-tls-verify": True}}],
            "users": [{"name": "crd136", "user": {"client-certificate": str(work / "admin.crt"),
                                                  "client-key": str(work / "admin.key")}}],
            "contexts": [{"name": "crd136", "context": {"cluster": "crd136", "user": "crd136"}}],
            "current-context": "crd136"}))
        session = requests.Session()
        session.trust_env = False
        session.verify = False
        session.cert = (str(work / "admin.crt"), str(work / "admin.key"))

        def ready():
            # /readyz stays 500 (its Service informer targets the absent core server).
            try:
                return session.get(f"https://127.0.0.1:{api_port}/readyz?exclude=informer-sync", timeout=2).ok
            except requests.RequestException:
                return False
        wait_for("the 1.36 CRD server ready", ready, timeout=120, processes=processes)
        kube = Kube(str(kubeconfig))
        kube.session.cert = session.cert
        assert kube.get("/version").json()["gitVersion"] == "v1.36.4"
        yield kube
    finally:
        for p in reversed(processes):
            p.terminate()
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(work, ignore_errors=True)


def kubectl(kube: Kube, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "--kubeconfig", kube.kubeconfig, *args], input=stdin,
                          capture_output=True, text=True, timeout=120)


def apply(kube: Kube, doc: dict, *extra: str) -> subprocess.CompletedProcess:
    return kubectl(kube, "apply", "--server-side", "--validate=strict", "--field-manager=crd136-test", *extra,
                   "-f", "-", stdin=json.dumps(doc))


_namespaces = iter(range(1_000_000))


def namespace(prefix: str) -> str:
    """A namespace name of its own (the 1.36 server has no Namespaces to create: custom
    resources go into any namespace name)."""
    return f"{prefix}-{os.getpid()}-{next(_namespaces)}"


@pytest.fixture(scope="module")
def crds136(kube136: Kube) -> Kube:
    out = kubectl(kube136, "apply", "--server-side", "--validate=strict", "-f", str(ROOT / "crds"))
    assert out.returncode == 0, out.stderr

    def established():
        conditions = {name: {c["type"]: c for c in kube136.get(crd_path(name)).json()["status"].get("conditions", [])}
                      for name in CRD_NAMES}
        return conditions if all(c.get("Established", {}).get("status") == "True" for c in conditions.values()) else None
    conditions = wait_for("the CRDs Established on 1.36", established)
    for name, by_type in conditions.items():
        assert by_type["NamesAccepted"]["status"] == "True", by_type
        assert "NonStructuralSchema" not in by_type, by_type["NonStructuralSchema"]

    def discovered():
        # The plain /apis group list (kubectl's discovery) and the group version's resources.
        groups = {g["name"] for g in kube136.get("/apis").json()["groups"]}
        if "events.ngrok.io" not in groups:
            return False
        listed = kube136.get(f"/apis/{GROUP_VERSION}", ok=(200, 404))
        return listed.ok and set(PLURALS.values()) <= {r["name"] for r in listed.json()["resources"]}
    wait_for("the kinds in discovery", discovered)
    return kube136


def cel_rules(schema) -> list[str]:
    """Every `x-kubernetes-validations` rule in a schema, at any depth."""
    if isinstance(schema, dict):
        return [r["rule"] for r in schema.get("x-kubernetes-validations", [])] + \
            [rule for v in schema.values() for rule in cel_rules(v)]
    if isinstance(schema, list):
        return [rule for v in schema for rule in cel_rules(v)]
    return []


def test_the_crds_are_accepted_established_and_structural_with_their_cel_rules(crds136):
    for name in CRD_NAMES:
        stored = crds136.get(crd_path(name)).json()["spec"]["versions"][0]["schema"]
        committed = yaml.safe_load((ROOT / "crds" / f"{name}.yaml").read_text())["spec"]["versions"][0]["schema"]
        assert stored == committed, f"{name}: 1.36 stores the schema as generated (nothing dropped)"
        # Destination: description, metadata, target, and each AWS target's auth; subscription:
        # sources[].filter.
        assert len(cel_rules(stored)) == (6 if name.startswith("eventdestinations") else 1), cel_rules(stored)


def yaml_blocks_of_readme() -> list[dict]:
    docs = []
    for block in re.findall(r"```yaml\n(.*?)```", (ROOT / "README.md").read_text(), re.S):
        try:
            docs.extend(d for d in yaml.safe_load_all(block) if isinstance(d, dict))
        except yaml.YAMLError:
            continue  # a fragment (one field of a spec), not a resource
    return docs


def resources() -> list[tuple[str, dict]]:
    found = []
    for path in sorted((ROOT / "examples").glob("*.yaml")):
        found += [(f"examples/{path.name}", d) for d in yaml.safe_load_all(path.read_text()) if d]
    found += [("README.md", d) for d in yaml_blocks_of_readme()]
    return [(source, d) for source, d in found if d.get("kind") in KINDS]


def test_every_example_and_readme_resource_applies_server_side(crds136):
    found = resources()
    assert {source for source, _ in found} >= {"README.md", "examples/subscription.yaml", "examples/kinesis-role.yaml"}
    assert {d["kind"] for _, d in found} == set(KINDS)
    ns = namespace("examples")
    for source, doc in found:
        doc = {**doc, "metadata": {**doc["metadata"], "namespace": ns}}
        out = apply(crds136, doc)
        assert out.returncode == 0, f"{source} {doc['kind']}/{doc['metadata']['name']}: {out.stderr}"
        got = crds136.get(f"/apis/{GROUP_VERSION}/namespaces/{ns}/{PLURALS[doc['kind']]}/{doc['metadata']['name']}")
        assert got.json()["spec"]["target" if doc["kind"] == "EventDestination" else "sources"]


def kinesis(**spec) -> dict:
    return {"target": {"kinesis": {"streamArn": "arn:aws:kinesis:us-east-2:123456789012:stream/s",
                                   "auth": {"role": {"roleArn": "arn:aws:iam::123456789012:role/r"}}}}, **spec}


def destination(name: str, spec: dict) -> dict:
    return {"apiVersion": GROUP_VERSION, "kind": "EventDestination", "metadata": {"name": name}, "spec": spec}


def subscription(name: str, filter_: str) -> dict:
    return {"apiVersion": GROUP_VERSION, "kind": "EventSubscription", "metadata": {"name": name},
            "spec": {"sources": [{"type": "http_request_complete.v0", "filter": filter_}],
                     "destinationRefs": [{"name": "d"}]}}


ROLE = {"roleArn": "arn:aws:iam::123456789012:role/r"}
CREDS = {"accessKeyIdRef": {"name": "aws", "key": "id"}, "secretAccessKeyRef": {"name": "aws", "key": "secret"}}
TARGET = "exactly one target is required: kinesis, firehose, cloudwatchLogs, datadog or azureLogsIngestion"
AUTH = "exactly one AWS auth is required: role (an IAM role ngrok assumes) or creds (access keys from Secrets)"
DESCRIPTION = "description must be at most 255 bytes in UTF-8 (ngrok's limit)"
METADATA = "metadata must be at most 4096 bytes in UTF-8 (ngrok's limit)"
FILTER = "filter must be at most 4096 bytes in UTF-8"

ONE_OF_NONE = 'must validate one and only one schema (oneOf). Found none valid'
TOO_LONG = "Too long: may not be more than {} bytes"  # maxLength's message; it counts characters

# (case, resource, what the refusal says). The server runs the CEL rules only on an object that
# passes the structural schema: zero targets and neither auth are refused by `oneOf` +
# `required` first, an ASCII string over the limit by `maxLength`; the CEL rules speak for two
# targets, both auths and a string within `maxLength` but over the limit in bytes ("é" is 2
# bytes in UTF-8, 1 character), which 1.20 lets through.
REFUSED = [
    ("zero targets", destination("zero-targets", {"target": {}}), f'"spec.target" {ONE_OF_NONE}'),
    ("two targets", destination("two-targets", {"target": {
        **kinesis()["target"], "datadog": {"apiKeyRef": {"name": "dd", "key": "k"}}}}), TARGET),
    *[(f"{t}: both AWS auths", destination(f"both-{t.lower()}", {"target": {t: {arn: "arn:aws:x", "auth": {
        "role": ROLE, "creds": CREDS}}}}), AUTH)
      for t, arn in (("kinesis", "streamArn"), ("firehose", "deliveryStreamArn"), ("cloudwatchLogs", "logGroupArn"))],
    *[(f"{t}: neither AWS auth", destination(f"neither-{t.lower()}", {"target": {t: {arn: "arn:aws:x", "auth": {}}}}),
       f'"spec.target.{t}.auth" {ONE_OF_NONE}')
      for t, arn in (("kinesis", "streamArn"), ("firehose", "deliveryStreamArn"), ("cloudwatchLogs", "logGroupArn"))],
    ("description: 128 characters, 256 bytes", destination("description-multibyte", kinesis(description="é" * 128)),
     DESCRIPTION),
    ("description: 256 characters and bytes", destination("description-ascii", kinesis(description="d" * 256)),
     TOO_LONG.format(255)),
    ("metadata: 2049 characters, 4098 bytes", destination("metadata-multibyte", kinesis(metadata="é" * 2049)),
     METADATA),
    ("metadata: 4097 characters and bytes", destination("metadata-ascii", kinesis(metadata="m" * 4097)),
     TOO_LONG.format(4096)),
    ("filter: 2055 characters, 4100 bytes", subscription("filter-multibyte", "ev.x == '" + "é" * 2045 + "'"), FILTER),
    ("filter: 4097 characters and bytes", subscription("filter-ascii", "ev.x == '" + "f" * 4087 + "'"),
     TOO_LONG.format(4096)),
]

ACCEPTED = [
    ("description: 255 bytes with multi-byte characters", destination("description-at-limit",
                                                                      kinesis(description="é" * 127 + "d"))),
    ("metadata: 4096 bytes with multi-byte characters", destination("metadata-at-limit", kinesis(metadata="é" * 2048))),
    ("filter: 4096 bytes with multi-byte characters", subscription("filter-at-limit", "ev.x == '" + "é" * 2043 + "'")),
    ("creds alone", destination("creds", {"target": {"firehose": {"deliveryStreamArn": "arn:aws:x",
                                                                  "auth": {"creds": CREDS}}}})),
]


@pytest.mark.parametrize("case,doc,message", REFUSED, ids=[c for c, _, _ in REFUSED])
def test_each_cel_rule_refuses_a_bad_resource_at_apply_time(crds136, case, doc, message):
    if doc["kind"] == "EventSubscription":
        assert len(doc["spec"]["sources"][0]["filter"].encode()) > 4096
    out = apply(crds136, doc, "-n", namespace("cel"))
    assert out.returncode != 0, f"{case}: accepted"
    assert message in out.stderr, f"{case}: {out.stderr}"


@pytest.mark.parametrize("case,doc", ACCEPTED, ids=[c for c, _ in ACCEPTED])
def test_resources_within_the_rules_are_accepted(crds136, case, doc):
    out = apply(crds136, doc, "-n", namespace("cel-ok"))
    assert out.returncode == 0, f"{case}: {out.stderr}"


def test_an_unknown_field_is_refused_by_strict_field_validation(crds136):
    ns = namespace("strict")
    doc = destination("typo", kinesis(descripton="a typo"))
    # kubectl apply (client-side: the server's strict field validation) and --server-side (the
    # apply patch is typed against the schema).
    out = kubectl(crds136, "apply", "--validate=strict", "-n", ns, "-f", "-", stdin=json.dumps(doc))
    assert out.returncode != 0 and 'unknown field "spec.descripton"' in out.stderr, out.stderr
    out = apply(crds136, doc, "-n", ns)
    assert out.returncode != 0 and ".spec.descripton: field not declared in schema" in out.stderr, out.stderr
    # The same with the API's own parameter, as any client sends it.
    r = crds136.request("POST", f"/apis/{GROUP_VERSION}/namespaces/{ns}/eventdestinations?fieldValidation=Strict",
                        doc, ok=None)
    assert r.status_code == 400 and "descripton" in r.text, r.text


@pytest.fixture(scope="module")
def status_bodies(tmp_path_factory) -> dict[str, dict]:
    """The operator's status apply bodies, written by tests/status_bodies.rs."""
    out_dir = tmp_path_factory.mktemp("status-bodies")
    run = subprocess.run(["cargo", "test", "-q", "--locked", "--test", "status_bodies"], cwd=ROOT,
                         env={**os.environ, "NEO_STATUS_BODIES_DIR": str(out_dir)},
                         capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stdout + run.stderr
    bodies = {p.stem: json.loads(p.read_text()) for p in out_dir.glob("*.json")}
    assert sorted(bodies) == ["destination-ready", "destination-stalled", "subscription-ready", "subscription-stalled"]
    return bodies


def test_the_status_the_operator_writes_applies_on_1_36(crds136, status_bodies):
    ns = namespace("status")
    for doc in (destination("d", kinesis()), subscription("s", "")):
        assert apply(crds136, doc, "-n", ns).returncode == 0
    for name, body in status_bodies.items():
        plural, resource = ("eventdestinations", "d") if name.startswith("destination") else ("eventsubscriptions", "s")
        path = f"/apis/{GROUP_VERSION}/namespaces/{ns}/{plural}/{resource}/status"
        # As kube's patch_status with PatchParams::apply("ngrok-events-operator").force(), and
        # strict, so that a field the schema does not have would be refused rather than pruned.
        crds136.request("PATCH", f"{path}?fieldManager=ngrok-events-operator&force=true&fieldValidation=Strict",
                        json.dumps(body), content_type="application/apply-patch+yaml")
        stored = crds136.get(path).json()
        assert stored["status"] == body["status"], f"{name}: the status as written, nothing pruned"
        managers = {m["manager"]: m for m in stored["metadata"]["managedFields"]}
        assert managers["ngrok-events-operator"]["subresource"] == "status"


# --- Kubernetes 1.20: the shared test bed ---------------------------------------------------------


def test_1_20_accepts_the_same_crds_and_drops_the_cel_rules(kube):
    for name in CRD_NAMES:
        path = str(ROOT / "crds" / f"{name}.yaml")
        # kubectl's client-side validation (1.20 has no server-side field validation) does not
        # know x-kubernetes-validations; the README says to pass --validate=false there.
        # (It does not look inside `items`, so the subscription's one rule, under sources[], passes.)
        if name.startswith("eventdestinations"):
            refused = kubectl(kube, "apply", "--dry-run=server", "-f", path)
            assert refused.returncode != 0 and 'unknown field "x-kubernetes-validations"' in refused.stderr, \
                refused.stderr
        out = kubectl(kube, "apply", "--validate=false", "--dry-run=server", "-o", "json", "-f", path)
        assert out.returncode == 0, out.stderr
        applied = json.loads(out.stdout)
        assert cel_rules(applied["spec"]) == [], "1.20 drops the CEL rules"
        assert applied["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["required"] == \
            yaml.safe_load(open(path))["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["required"]


def test_1_20_accepts_what_the_cel_rules_refuse(kube, crds_installed):
    """A description of 256 bytes in 128 characters passes 1.20's schema (maxLength counts
    characters); the operator stalls it (tests/reconcile.rs
    a_spec_over_ngrok_byte_limits_stalls_before_any_call)."""
    ns = kube.namespace("cel-1-20")
    for case, doc, _ in REFUSED:
        if "multi-byte" not in case and "characters," not in case:
            continue
        r = kube.request("POST", f"/apis/{GROUP_VERSION}/namespaces/{ns}/{PLURALS[doc['kind']]}?dryRun=All", doc,
                         ok=None)
        assert r.status_code == 201, f"{case}: {r.status_code} {r.text[:300]}"
