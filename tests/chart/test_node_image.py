"""The test image (scripts/build-test-image.sh, the one the node tests run) and the Dockerfile
(the recipe for users' pipelines) agree on what matters: user, entrypoint, command, port,
labels, where the binary is, and the files the binary needs at run time (CA certificates,
the 65532 user, its libraries). Node tier: NEO_TEST_IMAGE names the archive."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import tempfile

import pytest
import yaml
from dockerfile_parse import DockerfileParser

from conftest import CHART, ROOT

BINARY = "usr/local/bin/ngrok-events-operator"


@pytest.fixture(scope="module")
def image():
    path = os.environ.get("NEO_TEST_IMAGE")
    if not path:
        pytest.fail("NEO_TEST_IMAGE is not set: run the node tests with scripts/test-node.sh")
    with tarfile.open(path) as archive:
        (manifest,) = json.load(archive.extractfile("manifest.json"))
        config = json.load(archive.extractfile(manifest["Config"]))
        (layer_name,) = manifest["Layers"]
        layer = tarfile.open(fileobj=archive.extractfile(layer_name))
        files = {m.name.removeprefix("./"): m for m in layer.getmembers()}
        read = lambda name: layer.extractfile(files[name]).read()  # noqa: E731
        yield manifest, config, files, read


def dockerfile():
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    structure = parser.structure
    final = structure[[i for i, s in enumerate(structure) if s["instruction"] == "FROM"][-1]:]
    return parser, final


def instruction(final, name):
    return [i["value"] for i in final if i["instruction"] == name]


def test_user_entrypoint_command_and_port_agree(image):
    manifest, config, _, _ = image
    _, final = dockerfile()
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    default = yaml.safe_load((CHART / "values.yaml").read_text())["image"]["repository"]
    assert manifest["RepoTags"] == ["localhost/ngrok-events-operator:test", f"{default}:{chart['appVersion']}"]
    assert config["config"]["User"] == instruction(final, "USER")[-1] == "65532:65532"
    assert config["config"]["Entrypoint"] == json.loads(instruction(final, "ENTRYPOINT")[-1])
    assert config["config"]["Cmd"] == json.loads(instruction(final, "CMD")[-1])
    assert set(config["config"]["ExposedPorts"]) == {f"{p}/tcp" for p in instruction(final, "EXPOSE")}


def test_labels_agree_and_the_version_is_the_charts(image):
    _, config, _, _ = image
    parser, final = dockerfile()
    (arg,) = instruction(final, "ARG")
    name, default = arg.split("=")
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert default == app_version, "the Dockerfile's default VERSION is the chart's appVersion"
    labels = {k: v.replace("${" + name + "}", default) for k, v in parser.labels.items()}
    assert config["config"]["Labels"] == labels


def test_the_binary_is_where_the_dockerfile_puts_it_and_runs_from_the_image_alone(image):
    _, config, files, read = image
    _, final = dockerfile()
    copy = next(c for c in instruction(final, "COPY") if "/ngrok-events-operator " in c)
    assert copy.split()[-1] == "/" + BINARY == config["config"]["Entrypoint"][0]
    assert files[BINARY].mode & 0o111
    # Run the image's own binary with only the image's files (its loader and libraries).
    with tempfile.TemporaryDirectory() as root:
        with tarfile.open(os.environ["NEO_TEST_IMAGE"]) as archive:
            (manifest,) = json.load(archive.extractfile("manifest.json"))
            tarfile.open(fileobj=archive.extractfile(manifest["Layers"][0])).extractall(root, filter="tar")
        out = subprocess.run(["chroot", root, "/" + BINARY, "--version"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert "ngrok-events-operator" in out.stdout


def test_the_license_is_where_the_dockerfile_puts_it(image):
    _, _, files, read = image
    _, final = dockerfile()
    copy = next(c for c in instruction(final, "COPY") if "LICENSE" in c)
    assert read(copy.split()[-1].removeprefix("/")) == (ROOT / "LICENSE").read_bytes()


def test_the_files_distroless_cc_provides_are_there(image):
    """distroless/cc-debian12:nonroot (the Dockerfile's base) brings glibc, the CA bundle and the
    nonroot user; the test image must bring the same, or the node tests prove nothing."""
    _, _, files, read = image
    parser, _ = dockerfile()
    assert parser.baseimage.startswith("gcr.io/distroless/cc-debian12:nonroot")
    bundle = read("etc/ssl/certs/ca-certificates.crt").decode()
    assert bundle.count("BEGIN CERTIFICATE") > 100, "Debian's full CA bundle"
    assert "nonroot:x:65532:65532:" in read("etc/passwd").decode()
    assert any(name.startswith(("lib/", "lib64/", "usr/lib/")) and "libc.so" in name for name in files)
