"""A legal review's first questions: is there a license, and does every published artefact (the
crates, the chart, the image) name the same one? Plus the changelog and security policy a
platform team's intake review asks for."""

from __future__ import annotations

import re
import tomllib

import yaml
from dockerfile_parse import DockerfileParser

from conftest import CHART, ROOT

SPDX = "Apache-2.0"


def test_the_license_text_is_apache_2_0_at_the_root_and_in_the_chart():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    # `helm package` ships what is in the chart's folder: the license goes with the chart.
    assert (CHART / "LICENSE").read_text() == text


def test_every_crate_names_the_license():
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())
    assert workspace["workspace"]["package"]["license"] == SPDX
    manifests = [ROOT / "Cargo.toml", *sorted((ROOT / "crates").glob("*/Cargo.toml"))]
    assert len(manifests) >= 5
    for manifest in manifests:
        package = tomllib.loads(manifest.read_text())["package"]
        assert package.get("license") in ({"workspace": True}, SPDX), manifest


def test_the_chart_and_the_image_name_the_license():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["annotations"]["artifacthub.io/license"] == SPDX
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    assert parser.labels["org.opencontainers.image.licenses"] == SPDX
    assert "/src/LICENSE /licenses/LICENSE" in parser.content


def test_the_changelog_keeps_a_changelog_and_names_this_version():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "keepachangelog.com" in changelog and "semver.org" in changelog
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    versions = re.findall(r"^## \[([^\]]+)\]", changelog, re.M)
    assert versions[0] == "Unreleased" or versions[0] == chart["version"], versions
    assert chart["version"] in versions or "Unreleased" in versions
    sections = set(re.findall(r"^### (\w+)", changelog, re.M))
    assert sections <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}, sections


def test_the_security_policy_says_how_to_report_and_what_is_supported():
    policy = (ROOT / "SECURITY.md").read_text()
    assert "## Reporting a vulnerability" in policy
    assert "## Supported versions" in policy
    assert "security/advisories/new" in policy, "a private channel, not a public issue"
