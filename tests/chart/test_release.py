"""The release workflow publishes what the chart installs by default: the image the chart names
(repository and tag = appVersion), for amd64 and arm64, and the chart itself, on a version tag."""

from __future__ import annotations

import yaml

from conftest import CHART, ROOT, find, render

WORKFLOW = ROOT / ".github" / "workflows" / "release.yml"


def steps():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    # PyYAML reads the key `on` as True.
    assert workflow[True]["push"]["tags"] == ["v*.*.*"]
    (job,) = workflow["jobs"].values()
    return job["steps"]


def test_the_workflow_publishes_the_charts_default_image_for_amd64_and_arm64():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    owner = chart["home"].removeprefix("https://github.com/").split("/")[0]
    build = next(s for s in steps() if s.get("uses", "").startswith("docker/build-push-action@"))
    assert set(build["with"]["platforms"].split(",")) == {"linux/amd64", "linux/arm64"}
    published = build["with"]["tags"].replace("${{ github.repository_owner }}", owner)
    published = published.replace("${{ env.VERSION }}", chart["appVersion"])
    assert build["with"]["push"] is True
    container = find(render(), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == published


def test_the_workflow_publishes_the_chart_and_checks_the_tag_against_it():
    script = "\n".join(s.get("run", "") for s in steps())
    assert "helm package charts/ngrok-events-operator" in script
    assert "helm push" in script and "oci://ghcr.io/" in script
    assert "appVersion" in script and "version:" in script
