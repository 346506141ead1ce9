"""The Dockerfile's properties, parsed (images cannot be pulled on the build machines)."""

from __future__ import annotations

from dockerfile_parse import DockerfileParser

from conftest import ROOT


def parsed():
    parser = DockerfileParser(path=str(ROOT / "Dockerfile"))
    return parser, parser.structure


def test_multi_stage_release_build_with_locked_dependencies():
    parser, structure = parsed()
    froms = [i["value"] for i in structure if i["instruction"] == "FROM"]
    assert len(froms) == 2
    assert froms[0].startswith("docker.io/library/rust:") and froms[0].endswith(" AS builder")
    runs = " ".join(i["value"] for i in structure if i["instruction"] == "RUN")
    assert "cargo build --release --locked" in runs and "strip" in runs


def test_runtime_is_minimal_non_root_and_labelled():
    parser, structure = parsed()
    assert parser.baseimage.startswith("gcr.io/distroless/"), "no shell, no package manager"
    final = structure[[i for i, s in enumerate(structure) if s["instruction"] == "FROM"][-1]:]
    copies = [i["value"] for i in final if i["instruction"] == "COPY"]
    assert copies == [
        "--from=builder /ngrok-events-operator /usr/local/bin/ngrok-events-operator",
        "--from=builder /src/LICENSE /licenses/LICENSE",
    ], "the binary and its license alone"
    assert [i["value"] for i in final if i["instruction"] == "USER"] == ["65532:65532"]
    assert not [i for i in final if i["instruction"] == "RUN"], "the runtime image has no shell to run anything"
    labels = parser.labels
    for key in ("source", "version", "licenses"):
        assert labels.get(f"org.opencontainers.image.{key}"), key
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    entrypoint = [i["value"] for i in final if i["instruction"] == "ENTRYPOINT"]
    assert entrypoint == ['["/usr/local/bin/ngrok-events-operator"]']


def test_only_public_images_and_the_repository():
    parser, structure = parsed()
    for i in structure:
        if i["instruction"] == "FROM":
            image = i["value"].split()[0]
            assert image.split("/")[0] in ("docker.io", "gcr.io"), image
        if i["instruction"] in ("ADD",):
            raise AssertionError("ADD can fetch URLs; COPY from the repository only")
    dockerignore = (ROOT / ".dockerignore").read_text().split()
    assert "target/" in dockerignore and ".git/" in dockerignore
