"""Writes argocd/argocd-cm.yaml: the argocd-cm keys that install argocd/health.lua for both kinds
(`python3 tests/chart/render_argocd.py`; tests/chart/test_argocd_health.py fails when it drifts)."""

from __future__ import annotations

import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
KINDS = ("EventDestination", "EventSubscription")


def render() -> str:
    script = (ROOT / "argocd" / "health.lua").read_text()
    body = "".join("    " + line if line.strip() else line for line in script.splitlines(keepends=True))
    out = [
        "# Generated from argocd/health.lua by tests/chart/render_argocd.py: do not edit.\n",
        "# Argo CD health for both kinds of ngrok-events-operator. Merge into your argocd-cm\n",
        "# (kubectl -n argocd patch configmap argocd-cm --patch-file argocd/argocd-cm.yaml).\n",
        "apiVersion: v1\n",
        "kind: ConfigMap\n",
        "metadata:\n",
        "  name: argocd-cm\n",
        "  namespace: argocd\n",
        "  labels:\n",
        "    app.kubernetes.io/name: argocd-cm\n",
        "    app.kubernetes.io/part-of: argocd\n",
        "data:\n",
    ]
    for kind in KINDS:
        out.append(f"  resource.customizations.health.events.ngrok.io_{kind}: |\n")
        out.append(body)
    return "".join(out)


if __name__ == "__main__":
    (ROOT / "argocd" / "argocd-cm.yaml").write_text(render())
