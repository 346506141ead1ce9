"""The CRDs as chart templates (templates/crds.yaml over files/crds/): rendered from the generated
crds/ byte for byte with the chart's labels and helm.sh/resource-policy: keep; small enough for
client-side `kubectl apply` (and Argo CD's); `kubectl apply` of deploy/ updates CRDs that exist.
On the test bed: a release of the previous chart (0.1.0, whose CRDs came from its crds/ and so
carry no Helm metadata) is upgraded with --take-ownership as README's "Upgrade and uninstall"
says, and its CRDs then belong to the release; turning crds.enabled off, and uninstalling, keep
them; installing the release again takes them back. README's way for a Helm without
--take-ownership (kubectl label and annotate, then a plain upgrade) works too. The previous
chart comes from the git history (PREVIOUS_RELEASE).

The test bed is shared: the CRDs are never deleted, and only their Helm metadata is changed."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile

import helm_python as helm
import pytest
import yaml

from conftest import CRD_NAMES, ROOT, crd_path, helm_install, helm_uninstall, helm_upgrade, render

# The previous release: its chart installed the CRDs from crds/ (installed once, never upgraded).
PREVIOUS_RELEASE = "004d607"  # 0.1.0
# kubectl's client-side apply stores the object as JSON in an annotation, and an object's
# annotations may hold 262144 bytes in all (Argo CD's client-side sync does the same).
ANNOTATIONS_LIMIT = 262144
KEEP = {"helm.sh/resource-policy": "keep"}
# What Helm checks before it updates an object that a release did not create.
OWNERSHIP_LABEL = "app.kubernetes.io/managed-by"
OWNERSHIP_ANNOTATIONS = ("meta.helm.sh/release-name", "meta.helm.sh/release-namespace")


def crds_of(docs: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "CustomResourceDefinition"}


def generated(name: str) -> str:
    return (ROOT / "crds" / f"{name}.yaml").read_text()


def test_the_crds_are_the_generated_ones_with_labels_and_keep():
    chart = helm.Chart.load(str(ROOT / "charts" / "ngrok-events-operator"))
    text = chart.render({}, name="neo", namespace="ops")["ngrok-events-operator/templates/crds.yaml"]
    rendered = crds_of(render(name="neo", namespace="ops"))
    assert sorted(rendered) == CRD_NAMES
    for name, crd in rendered.items():
        labels = crd["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == "crds" and labels["app.kubernetes.io/instance"] == "neo"
        assert labels[OWNERSHIP_LABEL] == "Helm"
        assert crd["metadata"]["annotations"] == KEEP
        assert {**crd, "metadata": {"name": name}} == yaml.safe_load(generated(name))
        # The generated text itself, with only the labels and the annotation added.
        (document,) = [d.splitlines() for d in text.split("\n---\n") if f"\n  name: {name}\n" in d]
        start, end = document.index("metadata:") + 1, document.index(f"  name: {name}")
        assert "\n".join(document[:start] + document[end:]) + "\n" == generated(name)
        assert yaml.safe_load("\n".join(document[start:end])) == {"labels": labels, "annotations": KEEP}


def test_keep_and_enabled_can_be_turned_off():
    assert all("annotations" not in crd["metadata"] for crd in crds_of(render({"crds": {"keep": False}})).values())
    assert sorted(crds_of(render({"crds": {"keep": False}}))) == CRD_NAMES
    assert crds_of(render({"crds": {"enabled": False}})) == {}


def test_the_crds_fit_client_side_apply():
    """The CRDs are far from the limit; past half of it, README must send everyone to server-side
    apply (`kubectl apply --server-side`, Argo CD's ServerSideApply=true) before it is reached."""
    for crd in [*crds_of(render()).values(), *(yaml.safe_load((ROOT / "deploy" / f"{n}.yaml").read_text()) for n in CRD_NAMES)]:
        last_applied = len(json.dumps(crd, separators=(",", ":")))
        assert last_applied < ANNOTATIONS_LIMIT // 2, f"{crd['metadata']['name']}: {last_applied} bytes"


def test_kubectl_apply_of_deploy_updates_existing_crds(kube, crds_installed):
    """`kubectl apply -k deploy/` upgrades CRDs that exist, whoever made them (server-side dry run:
    the shared CRDs are not changed)."""
    for name in CRD_NAMES:
        out = subprocess.run(["kubectl", "--kubeconfig", kube.kubeconfig, "apply", "--dry-run=server", "-o", "json",
                              "-f", str(ROOT / "deploy" / f"{name}.yaml")], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        applied = json.loads(out.stdout)
        assert applied["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
        assert "kubectl.kubernetes.io/last-applied-configuration" in applied["metadata"]["annotations"]
        assert applied["metadata"]["labels"]["app.kubernetes.io/component"] == "crds"


def previous_chart(tmp_path) -> str:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", PREVIOUS_RELEASE, "charts/ngrok-events-operator"],
                             capture_output=True, timeout=60)
    if archive.returncode != 0:
        pytest.fail(f"needs the git history of 0.1.0 ({PREVIOUS_RELEASE}; git fetch --unshallow): {archive.stderr.decode()}")
    tarfile.open(fileobj=io.BytesIO(archive.stdout)).extractall(tmp_path, filter="data")
    return str(tmp_path / "charts" / "ngrok-events-operator")


def live_metadata(kube) -> dict[str, dict]:
    return {name: kube.get(crd_path(name)).json()["metadata"] for name in CRD_NAMES}


def remove_helm_ownership(kube) -> None:
    """The CRDs without Helm's ownership metadata, as 0.1.0 left them (keep, if there, stays:
    Helm's ownership check does not read it). Removing the fields also ends every field
    manager's claim on them."""
    for crd in CRD_NAMES:
        kube.request("PATCH", crd_path(crd), json.dumps({"metadata": {
            "labels": {OWNERSHIP_LABEL: None}, "annotations": dict.fromkeys(OWNERSHIP_ANNOTATIONS)}}),
            content_type="application/merge-patch+json")


def previous_release(kube, tmp_path, prefix: str) -> tuple[helm.Config, str, str, dict]:
    """A release of 0.1.0 in a fresh namespace, and the CRDs as 0.1.0 left them (another release
    may have taken them over since)."""
    namespace = kube.namespace(prefix)
    name = namespace.replace(prefix, "neo")  # unique: cluster-scoped names derive from it
    config = helm.Config(kubeconfig_path=kube.kubeconfig, namespace=namespace)
    values = {"credentials": {"apiKey": "k"}, "rbac": {"userRoles": False}}
    remove_helm_ownership(kube)
    # --skip-crds: Helm 4 applies a chart's crds/ at install (server-side), and 0.1.0's
    # EventSubscription schema is older than the one the shared test bed serves.
    helm_install(config, name, values, namespace, chart=previous_chart(tmp_path), skip_crds=True)
    return config, name, namespace, values


def test_upgrade_from_0_1_0_takes_over_the_crds_and_uninstall_keeps_them(kube, crds_installed, tmp_path):
    config, name, namespace, values = previous_release(kube, tmp_path, "crds-upgrade")

    # README's upgrade, `helm upgrade --reset-then-reuse-values --take-ownership` (--reuse-values
    # would drop the new chart's defaults, such as crds): without --take-ownership, Helm refuses
    # to take over objects it did not create.
    with pytest.raises(helm.HelmReleaseError, match="invalid ownership metadata"):
        helm_upgrade(config, name, {}, namespace, reset_then_reuse_values=True)
    helm_upgrade(config, name, {}, namespace, reset_then_reuse_values=True, take_ownership=True)
    assert config.get_values(name) == values
    for crd, metadata in live_metadata(kube).items():
        assert metadata["labels"][OWNERSHIP_LABEL] == "Helm"
        assert [metadata["annotations"][k] for k in OWNERSHIP_ANNOTATIONS] == [name, namespace], crd
        assert metadata["annotations"]["helm.sh/resource-policy"] == "keep"
        assert f"name: {crd}\n" in config.status(name)["manifest"]

    # crds.enabled turned off: the release no longer carries them, and they stay.
    assert all(m["annotations"].get("helm.sh/resource-policy") == "keep" for m in live_metadata(kube).values()), \
        "without keep this upgrade would delete the shared CRDs"
    helm_upgrade(config, name, {**values, "crds": {"enabled": False}}, namespace)
    assert "kind: CustomResourceDefinition" not in config.status(name)["manifest"]
    live_metadata(kube)  # both still there (a GET that is not 200 fails)

    # On again (they still name this release: no --take-ownership), then uninstall keeps them;
    # the same release installed again takes them back by itself.
    helm_upgrade(config, name, values, namespace)
    uninstalled = helm_uninstall(config, name, disable_hooks=True)
    assert all(f"[CustomResourceDefinition] {crd}" in uninstalled["info"] for crd in CRD_NAMES), uninstalled["info"]
    assert all(m["annotations"]["helm.sh/resource-policy"] == "keep" for m in live_metadata(kube).values())
    helm_install(config, name, values, namespace)
    assert all(f"name: {crd}\n" in config.status(name)["manifest"] for crd in CRD_NAMES)
    helm_uninstall(config, name, disable_hooks=True)
    live_metadata(kube)


def test_upgrade_from_0_1_0_with_an_older_helm_labels_the_crds_first(kube, crds_installed, tmp_path):
    """Without --take-ownership (Helm before 3.17, which applies client-side): README's kubectl
    label and annotate, then a plain upgrade."""
    config, name, namespace, values = previous_release(kube, tmp_path, "crds-label")
    try:
        for crd in CRD_NAMES:
            for command in (["label", "crd", crd, "--overwrite", f"{OWNERSHIP_LABEL}=Helm"],
                            ["annotate", "crd", crd, "--overwrite", f"meta.helm.sh/release-name={name}",
                             f"meta.helm.sh/release-namespace={namespace}"]):
                out = subprocess.run(["kubectl", "--kubeconfig", kube.kubeconfig, *command], capture_output=True, text=True, timeout=60)
                assert out.returncode == 0, out.stderr
        helm_upgrade(config, name, {}, namespace, reset_then_reuse_values=True, server_side_apply="false")
        assert all(f"name: {crd}\n" in config.status(name)["manifest"] for crd in CRD_NAMES)
        assert all(m["annotations"]["helm.sh/resource-policy"] == "keep" for m in live_metadata(kube).values())
        helm_uninstall(config, name, disable_hooks=True)
        live_metadata(kube)  # kept (a GET that is not 200 fails)
    finally:
        # kubectl's label and annotate are field managers of those values now: a later
        # server-side apply of another release (Helm 4, even with --take-ownership) would stop
        # on a conflict with them (README: --force-conflicts). The test bed is shared.
        remove_helm_ownership(kube)
