"""`helm install` with Helm's own SDK into the test bed's real kube-apiserver (1.20): every
object is accepted (pods do not run: the test bed has no nodes). The release with default values
carries the CRDs (taking them over, as the test bed's CRDs exist already); uninstalling it keeps
them (helm.sh/resource-policy: keep)."""

from __future__ import annotations

import time

import helm_python as helm

from conftest import CRD_NAMES, crd_path, find, helm_install, helm_uninstall, path_of, render
from render_deploy import CRDS
from test_render import NON_DEFAULT


def test_install_defaults_and_non_default_values(kube):
    for suffix, values in (("defaults", {"credentials": {"apiKey": "k"}}), ("custom", {**NON_DEFAULT, "watchNamespace": ""})):
        namespace = kube.namespace(f"chart-{suffix}")
        values = {k: v for k, v in values.items() if not (k == "metrics" and suffix == "custom")}  # no ServiceMonitor CRD here
        config = helm.Config(kubeconfig_path=kube.kubeconfig, namespace=namespace)
        name = namespace.replace("chart-", "neo-")  # unique: cluster-scoped names derive from it
        # The CRDs exist already (the test bed's, or another release's): the release that carries
        # them takes them over, as README's "Upgrade and uninstall" says; the "custom" one leaves
        # them to another release (NON_DEFAULT: crds.enabled false).
        helm_install(config, name, values, namespace, take_ownership=suffix == "defaults")
        try:
            docs = render(values, name=name, namespace=namespace)
            for doc in docs:
                if doc["kind"] == "PodDisruptionBudget":  # Helm chose the API of the 1.20 server
                    doc["apiVersion"] = "policy/v1beta1"
                kube.get(f"{path_of(doc, namespace)}/{doc['metadata']['name']}")
            deployment = kube.get(f"{path_of(find(docs, 'Deployment'))}/{find(docs, 'Deployment')['metadata']['name']}").json()
            assert deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
            manifest = config.status(name)["manifest"]
            for crd in CRD_NAMES:
                assert kube.get(crd_path(crd)).json()["spec"]["group"] == "events.ngrok.io"
                assert (f"name: {crd}\n" in manifest) == (suffix == "defaults"), "the release carries the CRDs, or not"
        finally:
            helm_uninstall(config, name, disable_hooks=True)
    for crd in CRD_NAMES:  # kept: helm.sh/resource-policy
        kube.get(crd_path(crd))
    # Both kinds are served, with the short names and the `ngrok` category of `kubectl get ngrok`.
    deadline = time.time() + 20
    while True:  # discovery follows the CRDs
        resources = {r["name"]: r for r in kube.get("/apis/events.ngrok.io/v1alpha1", ok=None).json().get("resources", [])}
        if "eventsubscriptions/status" in resources or time.time() > deadline:
            break
        time.sleep(0.2)
    assert resources["eventdestinations"]["shortNames"] == ["ned"] and resources["eventsubscriptions"]["shortNames"] == ["nes"]
    assert resources["eventdestinations"]["categories"] == resources["eventsubscriptions"]["categories"] == ["ngrok"]
    assert resources["eventsubscriptions"]["kind"] == "EventSubscription" and resources["eventsubscriptions"]["namespaced"] is True
    assert "eventdestinations/status" in resources and "eventsubscriptions/status" in resources


def test_deploy_applies(kube):
    """`kubectl apply -k deploy/`: what kustomize builds from deploy/ is accepted (server-side dry run)."""
    import yaml
    from conftest import ROOT, path_of
    kustomization = yaml.safe_load((ROOT / "deploy" / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["namespace.yaml", *CRDS, "operator.yaml"]
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((ROOT / "deploy" / name).read_text()):
            if not doc:
                continue
            if doc["kind"] in ("Namespace", "CustomResourceDefinition"):
                r = kube.request("POST", path_of(doc), doc, ok=(201, 409))
                continue
            kube.request("POST", path_of(doc) + "?dryRun=All", doc, ok=(201,))
