"""The chart rendered by Helm's own SDK: defaults, non-default values, the values schema, lint,
the hardened pod, RBAC against the documented list of the operator's calls, and the generated
files (the chart's files/crds/, deploy/) against their sources."""

from __future__ import annotations

import json

import helm_python as helm
import pytest
import yaml

import render_deploy
from conftest import CHART, ROOT, find, kinds, render

# Every Kubernetes call the operator makes (src/, kube-runtime 5.0, kube-lease-manager 0.13.1):
OPERATOR_CALLS = {
    # The same calls for both kinds (the subscription controller also reads the EventDestination
    # cache, which the destination controller's watch fills):
    # controller.rs: Api::list (startup check, each kind) and each controller's watcher (list + watch).
    ("events.ngrok.io", "eventdestinations", "list"),
    ("events.ngrok.io", "eventdestinations", "watch"),
    ("events.ngrok.io", "eventsubscriptions", "list"),
    ("events.ngrok.io", "eventsubscriptions", "watch"),
    # kube-runtime finalizer(): JSON patches adding and removing events.ngrok.io/cleanup.
    ("events.ngrok.io", "eventdestinations", "patch"),
    ("events.ngrok.io", "eventsubscriptions", "patch"),
    # reconcile/mod.rs write_status: patch_status with server-side apply.
    ("events.ngrok.io", "eventdestinations/status", "patch"),
    ("events.ngrok.io", "eventsubscriptions/status", "patch"),
    # secrets.rs resolve: get_opt of each referenced Secret.
    ("", "secrets", "get"),
    # controller.rs: metadata-only watcher of Secrets (list + watch).
    ("", "secrets", "list"),
    ("", "secrets", "watch"),
    # kube-runtime events::Recorder: create, and a merge patch when an event repeats.
    ("events.k8s.io", "events", "create"),
    ("events.k8s.io", "events", "patch"),
}
LEADER_CALLS = {
    # kube-lease-manager: get, create (CreateNew / AutoCreate), patch (apply + strategic);
    # leader.rs: watch_object (list + watch) and the release merge patch.
    ("coordination.k8s.io", "leases", verb) for verb in ("get", "list", "watch", "create", "patch")
}


def rules_of(doc: dict) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in doc["rules"] for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def test_defaults_render_the_expected_objects():
    docs = render()
    assert kinds(docs) == ["ClusterRole"] * 4 + ["ClusterRoleBinding"] + ["CustomResourceDefinition"] * 2 + [
        "Deployment", "Service", "ServiceAccount"]
    deployment = find(docs, "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/ngrok-events-operator/ngrok-events-operator:" + helm.Chart.load(str(CHART)).metadata["appVersion"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["METRICS_ADDR"] == "0.0.0.0:8080" and env["LOG_FORMAT"] == "json" and env["DRIFT_INTERVAL"] == "10m"
    assert "LEADER_ELECT" not in env and "WATCH_NAMESPACE" not in env and "NGROK_API_KEY_FILE" not in env
    assert env["REQUIRE_CREDENTIALS_LABEL"] == "true"
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_the_pod_is_hardened_and_probed():
    spec = find(render(), "Deployment")["spec"]["template"]["spec"]
    assert spec["automountServiceAccountToken"] is False
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 65532 and pod["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = spec["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["runAsUser"] == 65532 and sc["runAsNonRoot"] is True
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]["memory"]
    # The token goes to this container only, read-only, and expires.
    (token,) = [v for v in spec["volumes"] if v["name"] == "kube-api-access"]
    assert token["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"] <= 3607
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["kube-api-access"]["readOnly"] is True
    sa = find(render(), "ServiceAccount")
    assert sa["automountServiceAccountToken"] is False


def test_the_image_uid_matches_the_chart():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "USER 65532:65532" in dockerfile


# controller.rs: metadata-only watches of namespaces (their default-deletion-policy annotation;
# those an operatorKeyNamespaceSelector or adoptionNamespaceSelector selects).
NAMESPACE_CALLS = {("", "namespaces", "list"), ("", "namespaces", "watch")}


def test_rbac_is_exactly_the_operators_calls():
    docs = render()
    # Watching every namespace, it reads each namespace's default-deletion-policy annotation.
    assert rules_of(find(docs, "ClusterRole", "ngrok-events-operator")) == OPERATOR_CALLS | NAMESPACE_CALLS
    binding = find(docs, "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "ngrok-events-operator", "namespace": "ngrok-events-operator"}]
    assert not [d for d in docs if d["kind"] == "Role"], "no lease access without leader election"


@pytest.mark.parametrize("values", [{"replicaCount": 2}, {"leaderElection": {"enabled": True}}])
def test_leader_election_adds_a_lease_role_in_the_release_namespace(values):
    docs = render(values)
    role = find(docs, "Role", "ngrok-events-operator-leader-election")
    assert role["metadata"]["namespace"] == "ngrok-events-operator"
    assert rules_of(role) == LEADER_CALLS
    find(docs, "RoleBinding", "ngrok-events-operator-leader-election")
    env = {e["name"]: e.get("value") for e in find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["LEADER_ELECT"] == "true"
    assert "strategy" not in find(docs, "Deployment")["spec"], "rolling updates hand over the lease"


def test_watch_namespace_grants_a_namespaced_role_there():
    docs = render({"watchNamespace": "team-a"})
    # The operator's own rights stay in the namespace (the user roles are ClusterRoles by nature).
    assert not [d for d in docs if d["kind"].startswith("Cluster") and d["metadata"]["name"] not in USER_ROLES]
    role = find(docs, "Role", "ngrok-events-operator")
    assert role["metadata"]["namespace"] == "team-a"
    assert rules_of(role) == OPERATOR_CALLS
    assert find(docs, "RoleBinding", "ngrok-events-operator")["metadata"]["namespace"] == "team-a"
    env = {e["name"]: e.get("value") for e in find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["WATCH_NAMESPACE"] == "team-a"




def test_an_operator_key_namespace_selector_watches_namespaces():
    docs = render({"operatorKeyNamespaceSelector": "ngrok.io/operator-key=allowed"})
    assert rules_of(find(docs, "ClusterRole", "ngrok-events-operator")) == OPERATOR_CALLS | NAMESPACE_CALLS
    env = {e["name"]: e.get("value") for e in find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["OPERATOR_KEY_NAMESPACE_SELECTOR"] == "ngrok.io/operator-key=allowed"
    with pytest.raises(Exception, match="needs a ClusterRole"):
        render({"operatorKeyNamespaceSelector": "a=b", "watchNamespace": "team-a"})


# controller.rs selected_namespaces, for --adoption-namespace-selector too.
def test_an_adoption_namespace_selector_watches_namespaces():
    docs = render({"multiTenancy": {"adoptionNamespaceSelector": "ngrok.io/adopt=allowed"}})
    assert rules_of(find(docs, "ClusterRole", "ngrok-events-operator")) == OPERATOR_CALLS | NAMESPACE_CALLS
    env = {e["name"]: e.get("value") for e in find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ADOPTION_NAMESPACE_SELECTOR"] == "ngrok.io/adopt=allowed"
    assert env["REQUIRE_CREDENTIALS_LABEL"] == "true", "the rest of multiTenancy keeps its defaults"
    # Default: no namespace may adopt with the operator-wide key, and namespaces are not watched.
    default_env = {e["name"] for e in find(render({}), "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "ADOPTION_NAMESPACE_SELECTOR" not in default_env
    with pytest.raises(Exception, match="needs a ClusterRole"):
        render({"multiTenancy": {"adoptionNamespaceSelector": "a=b"}, "watchNamespace": "team-a"})


NON_DEFAULT = {
    "replicaCount": 2,
    "image": {"repository": "registry.example.com/neo", "tag": "1.2.3", "pullPolicy": "Always", "pullSecrets": ["regcred"]},
    "credentials": {"apiKey": "key-one"},
    "apiUrl": "https://ngrok.example.com",
    "watchNamespace": "team-a",
    "driftInterval": "30m",
    "apiRateLimit": 60,
    "concurrency": 4,
    "logFormat": "text",
    "logLevel": "info,ngrok_events_operator=debug",
    "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "infra", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "ngrok-events-operator"}}}}]}},
    "podAnnotations": {"example.com/team": "platform"},
    "extraEnv": [{"name": "RUST_BACKTRACE", "value": "1"}],
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}},
    "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
    "multiTenancy": {"requireCredentialsLabel": False},
    "rbac": {"aggregateSubscriptionsToDefaultRoles": False},
    # A second release in a cluster whose CRDs another release carries.
    "crds": {"enabled": False},
}


def test_non_default_values_reach_the_objects():
    docs = render(NON_DEFAULT)
    assert kinds(docs) == ["ClusterRole"] * 3 + ["Deployment", "PodDisruptionBudget", "Role", "Role", "RoleBinding", "RoleBinding",
                           "Secret", "Service", "ServiceAccount", "ServiceMonitor"]
    pod = find(docs, "Deployment")["spec"]["template"]
    spec = pod["spec"]
    (container,) = spec["containers"]
    assert container["image"] == "registry.example.com/neo:1.2.3" and container["imagePullPolicy"] == "Always"
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["NGROK_API_URL"] == "https://ngrok.example.com" and env["WATCH_NAMESPACE"] == "team-a"
    assert env["DRIFT_INTERVAL"] == "30m" and env["NGROK_API_RATE_LIMIT"] == "60" and env["CONCURRENCY"] == "4"
    assert env["LOG_FORMAT"] == "text" and env["LOG_LEVEL"] == "info,ngrok_events_operator=debug"
    assert env["RUST_BACKTRACE"] == "1" and env["LEADER_ELECT"] == "true"
    assert env["NGROK_API_KEY_FILE"] == "/etc/ngrok-events-operator/credentials/api-key"
    assert env["REQUIRE_CREDENTIALS_LABEL"] == "false"
    assert container["resources"] == NON_DEFAULT["resources"]
    assert spec["nodeSelector"] == NON_DEFAULT["nodeSelector"] and spec["tolerations"] == NON_DEFAULT["tolerations"]
    assert spec["affinity"] == NON_DEFAULT["affinity"]
    assert pod["metadata"]["annotations"]["example.com/team"] == "platform"
    secret = find(docs, "Secret")
    assert secret["data"] == {"api-key": "a2V5LW9uZQ=="}
    assert find(docs, "ServiceMonitor")["metadata"]["labels"]["release"] == "prom"
    assert find(docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 1


USER_ROLES = {"ngrok-events-operator-view", "ngrok-events-operator-eventdestinations-edit",
              "ngrok-events-operator-eventsubscriptions-edit"}
AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"
EDIT_VERBS = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}


def aggregated_into(role: dict) -> set[str]:
    return {k.removeprefix(AGGREGATE) for k, v in role["metadata"]["labels"].items() if k.startswith(AGGREGATE) and v == "true"}


def test_user_roles_join_the_default_roles():
    docs = render()
    view = find(docs, "ClusterRole", "ngrok-events-operator-view")
    assert aggregated_into(view) == {"view"}, "view is itself part of edit and admin"
    assert rules_of(view) == {("events.ngrok.io", r, v) for r in ("eventdestinations", "eventdestinations/status", "eventsubscriptions",
                                                                  "eventsubscriptions/status") for v in ("get", "list", "watch")}
    for kind in ("eventdestinations", "eventsubscriptions"):
        edit = find(docs, "ClusterRole", f"ngrok-events-operator-{kind}-edit")
        assert aggregated_into(edit) == {"edit", "admin"}
        # Everything on the kind, but its status is the operator's alone.
        assert {(r, v) for _, r, v in rules_of(edit)} == {(kind, v) for v in EDIT_VERBS} | {(f"{kind}/status", v) for v in ("get", "list", "watch")}


def test_subscriptions_can_be_kept_out_of_the_default_roles():
    docs = render({"rbac": {"aggregateSubscriptionsToDefaultRoles": False}})
    assert aggregated_into(find(docs, "ClusterRole", "ngrok-events-operator-eventsubscriptions-edit")) == set(), \
        "still rendered, to be bound per namespace, but not part of edit or admin"
    assert aggregated_into(find(docs, "ClusterRole", "ngrok-events-operator-eventdestinations-edit")) == {"edit", "admin"}
    assert aggregated_into(find(docs, "ClusterRole", "ngrok-events-operator-view")) == {"view"}
    docs = render({"rbac": {"aggregateToDefaultRoles": False}})
    assert all(aggregated_into(find(docs, "ClusterRole", name)) == set() for name in USER_ROLES)
    docs = render({"rbac": {"userRoles": False}})
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole"] == ["ngrok-events-operator"]


def test_a_changed_api_key_restarts_the_pods():
    def checksum(values):
        return find(render(values), "Deployment")["spec"]["template"]["metadata"]["annotations"].get("checksum/credentials")
    one, two = checksum({"credentials": {"apiKey": "one"}}), checksum({"credentials": {"apiKey": "two"}})
    assert one and two and one != two
    assert checksum({"credentials": {"secretName": "mine"}}) is None


def test_an_existing_secret_is_mounted_not_copied():
    docs = render({"credentials": {"secretName": "ngrok-api-key", "secretKey": "key"}})
    assert "Secret" not in kinds(docs)
    spec = find(docs, "Deployment")["spec"]["template"]["spec"]
    (volume,) = [v for v in spec["volumes"] if v["name"] == "credentials"]
    assert volume["secret"]["secretName"] == "ngrok-api-key"
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert env["NGROK_API_KEY_FILE"] == "/etc/ngrok-events-operator/credentials/key"


@pytest.mark.parametrize("values", [
    {"replicaCont": 2},                                  # a typo at the top
    {"image": {"tga": "1.0"}},                            # a typo inside
    {"replicaCount": "2"},                                # a wrong type
    {"logFormat": "yaml"},                                # not an accepted value
    {"driftInterval": "ten minutes"},                     # not a duration
    {"concurrency": 0},
    {"credentials": {"secretName": "a", "apiKey": "b"}},  # both
    {"resources": {"request": {"cpu": "1"}}},
    {"metrics": {"serviceMonitor": {"enabled": "yes"}}},
    {"watchNamespace": "Team_A"},
    {"multiTenancy": {"requireCredentialsLabel": "no"}},
    {"rbac": {"aggregateToDefaultRole": True}},
    {"crds": {"enable": False}},
    {"crds": {"keep": "no"}},
])
def test_the_values_schema_rejects_typos_and_wrong_types(values):
    chart = helm.Chart.load(str(CHART))
    with pytest.raises(Exception):
        chart.render(values, name="x", namespace="y")


def test_lint_is_clean():
    for values in ({}, NON_DEFAULT):
        report = helm.lint(str(CHART), values, strict=True)
        problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
        assert not problems, json.dumps(report, indent=1)
        # Only "icon is recommended" (info) may remain.
        assert all(m["severity"] <= 1 for m in report["messages"])


def test_chart_crds_are_the_generated_crds():
    for crd in (ROOT / "crds").glob("*.yaml"):
        assert (CHART / "files" / "crds" / crd.name).read_text() == crd.read_text(), f"run scripts/generate.sh ({crd.name})"
    assert sorted(p.name for p in (CHART / "files" / "crds").glob("*")) == sorted(p.name for p in (ROOT / "crds").glob("*"))
    # A crds/ directory would be installed by Helm once, untemplated, and never upgraded.
    assert not (CHART / "crds").exists()


def test_deploy_is_the_rendered_chart():
    expected = render_deploy.files()
    actual = {p.name: p.read_text() for p in (ROOT / "deploy").iterdir()}
    assert actual == expected, "deploy/ drifted from the chart: run scripts/generate.sh"
    kustomization = yaml.safe_load(expected["kustomization.yaml"])
    assert sorted(kustomization["resources"]) == sorted(n for n in expected if n != "kustomization.yaml")


# drain.rs: list + patch (remove the finalizer) + delete of both kinds; the operator's
# Deployment get + patch (replicas: 0), its pods list (wait until they stop).
DRAIN_CALLS = {("events.ngrok.io", r, v) for r in ("eventdestinations", "eventsubscriptions")
               for v in ("list", "patch", "delete")}
DRAIN_OPERATOR_CALLS = {("apps", "deployments", "get"), ("apps", "deployments", "patch"), ("", "pods", "list")}


@pytest.mark.parametrize("values", [{}, {"watchNamespace": "team-a"}], ids=["cluster", "one-namespace"])
def test_uninstall_runs_the_drain_as_a_pre_delete_hook_with_exactly_its_rights(values):
    installed = {(d["kind"], d["metadata"]["name"]) for d in render(values)}
    hooks = [d for d in render(values, hooks=True) if (d["kind"], d["metadata"]["name"]) not in installed]
    assert sorted(d["kind"] for d in hooks) == sorted(
        ["ServiceAccount", "Job", "Role", "RoleBinding",
         "Role" if values else "ClusterRole", "RoleBinding" if values else "ClusterRoleBinding"])
    # Only the Job is a hook: Helm would delete a hook ServiceAccount or Role as soon as it
    # exists (hook-succeeded), before the Job uses it; as the release's, they outlive the hook.
    (job,) = [d for d in hooks if "helm.sh/hook" in d["metadata"].get("annotations", {})]
    assert job["kind"] == "Job"
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete"
    assert "hook-succeeded" in job["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
    kind = "Role" if values else "ClusterRole"
    assert rules_of(find(hooks, kind, "ngrok-events-operator-drain")) == DRAIN_CALLS
    operator_role = find(hooks, "Role", "ngrok-events-operator-drain-operator")
    assert rules_of(operator_role) == DRAIN_OPERATOR_CALLS
    assert operator_role["rules"][0]["resourceNames"] == ["ngrok-events-operator"]
    job = find(hooks, "Job")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["drain", "--policy=Retain", "--operator-deployment=ngrok-events-operator", "--timeout=240s"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env.get("WATCH_NAMESPACE") == values.get("watchNamespace")
    assert not [d for d in render(values) if d["kind"] == "Job"]
    # Helm waits 5 minutes for a hook by default: a drain that cannot finish fails by itself first.
    assert job["spec"]["activeDeadlineSeconds"] < 300


def test_the_drain_policy_and_switch_are_values():
    job = find(render({"uninstall": {"drain": {"policy": "Delete", "timeoutSeconds": 60}}}, hooks=True), "Job")
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][1:4:2] == ["--policy=Delete", "--timeout=60s"]
    assert not [d for d in render({"uninstall": {"drain": {"enabled": False}}}, hooks=True) if d["kind"] == "Job"]


def test_the_default_deletion_policy_is_a_value():
    env = lambda docs: {e["name"]: e.get("value") for e in find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env(render())["DEFAULT_DELETION_POLICY"] == "Delete"
    assert env(render({"defaultDeletionPolicy": "Retain"}))["DEFAULT_DELETION_POLICY"] == "Retain"
