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


# The identity a keyless signature of this workflow carries, and who issued it.
IDENTITY = "https://github.com/{owner}/ngrok-events-operator/.github/workflows/release.yml@refs/tags/v"
ISSUER = "https://token.actions.githubusercontent.com"


def owner() -> str:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    return chart["home"].removeprefix("https://github.com/").split("/")[0]


def test_the_workflow_may_sign_keylessly():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert workflow["permissions"]["id-token"] == "write"
    uses = [s.get("uses", "") for s in steps()]
    assert any(u.startswith("sigstore/cosign-installer@") for u in uses)
    assert any(u.startswith("anchore/sbom-action/download-syft@") for u in uses)


def test_the_image_is_signed_by_digest_with_an_sbom_attested():
    build = next(s for s in steps() if s.get("uses", "").startswith("docker/build-push-action@"))
    assert build["id"] == "image" and build["with"]["sbom"] is True
    assert build["with"]["provenance"] == "mode=max"
    sign = next(s for s in steps() if "cosign sign" in s.get("run", "") and "IMAGE" in s["run"])
    assert sign["env"]["DIGEST"] == "${{ steps.image.outputs.digest }}"
    assert 'cosign sign --yes "$IMAGE@$DIGEST"' in sign["run"]
    assert "syft scan" in sign["run"] and "spdx-json=image.spdx.json" in sign["run"]
    assert 'cosign attest --yes --type spdxjson --predicate image.spdx.json "$IMAGE@$DIGEST"' in sign["run"]


def test_the_chart_is_signed_by_digest_with_an_sbom_attested():
    script = "\n".join(s.get("run", "") for s in steps())
    assert "CHART_DIGEST=" in script, "the digest helm push printed"
    assert 'cosign sign --yes "$CHART_REPOSITORY/ngrok-events-operator@$CHART_DIGEST"' in script
    assert "--predicate chart.spdx.json" in script
    # Signed after it is pushed: the step order.
    names = [s.get("name", "") for s in steps()]
    assert names.index("the chart") < names.index("sign the chart and attest its SBOM")


def test_the_readme_verify_commands_name_what_is_signed():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    env = {k: v.replace("${{ github.repository_owner }}", owner()) for k, v in workflow["jobs"]["release"]["env"].items()}
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Verifying a release"):]
    section = section[: section.index("\n## ")]
    identity = IDENTITY.format(owner=owner())
    verify = [line for line in section.splitlines() if line.startswith("cosign verify")]
    assert len(verify) == 4, verify
    image, chart = env["IMAGE"], env["CHART_REPOSITORY"] + "/ngrok-events-operator"
    assert sum(f" {image}:" in line for line in verify) == 2
    assert sum(f" {chart}:" in line for line in verify) == 2
    assert all("--type spdxjson" in line for line in verify if line.startswith("cosign verify-attestation"))
    assert "--certificate-identity-regexp" in section and f"'^{identity}'" in section
    assert f"--certificate-oidc-issuer {ISSUER}" in section
