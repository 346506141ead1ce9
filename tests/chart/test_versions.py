"""Honest versions: the README's table "Kubernetes versions" names every API group/version the
operator and the chart use, with the Kubernetes versions that serve each, and this test holds
the table to the code, to the rendered chart and deploy/, and to the 1.20 test bed.

The list is derived, not written down here, so that an API added anywhere fails this test until
the table names it:

- **The operator's code**: every `.rs` file of the operator's package and of the workspace
  crates it depends on (`cargo metadata`), test-only code (`#[cfg(test)]` items and modules)
  left out. An API reaches the code in one of four ways, and each is found:
  - a k8s-openapi type, named in a `use` (brace groups expanded, aliases and globs followed) or
    inline in code: the type is looked up in the k8s-openapi sources of the Kubernetes version
    the build selects (the `v1_XX` feature Cargo resolves), and its `Resource::API_VERSION`
    there is its group/version (a type that is no resource, e.g. `LeaseSpec`, has none);
  - a `#[kube(group = ..., version = ...)]` derive: the custom resources' own group/version;
  - a literal group/version (`GroupVersionKind::gvk("apps", "v1", ..)`, `"apps/v1"`, or a
    metadata request's `g=meta.k8s.io;v=v1`);
  - a library that calls an API of its own when the operator uses it (LIBRARY_CALLS): the
    library's own sources, at the version Cargo.lock resolves, are read the same way, so an
    upgrade that moves it to another API is caught too.
- **The chart**: `crds/` (when the chart has one) and the templates rendered by Helm's SDK
  offline with the defaults and with every boolean value that is false by default set to true
  (every optional object), each template rendering something at least once; and a server-side
  dry-run install into the 1.20 test bed, where the chart picks the APIs of an older server
  (a PodDisruptionBudget's `policy/v1beta1`).
- **deploy/**: the apiVersion of every document.

The table must name exactly that list, each row with the places that use it; every API the
table says Kubernetes serves in 1.20 must be served by the test bed, and none it says 1.20 lacks;
the minimum version (per group, its oldest version: a group with two rows is one the chart picks
from by the server's version) is what Chart.yaml's kubeVersion and the README say.
"""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
from dataclasses import dataclass

import helm_python as helm
import pytest
import yaml

from conftest import CHART, NAMESPACE, RELEASE, ROOT

README = ROOT / "README.md"
SECTION = "### Kubernetes versions"
PLACES = ("operator", "chart", "deploy/")

# Libraries that call an API of their own when the operator's code uses them: what in the
# operator's code shows the use, the crate, and the crate's files that make the call.
LIBRARY_CALLS = [
    (r"\bkube::runtime::events\b|\bkube_runtime::events\b", "kube-runtime", ["src/events.rs"]),
    (r"\bkube_lease_manager::", "kube-lease-manager", ["src"]),
    (r"\bPartialObjectMeta\b|\bmetadata_watcher\b|\b(?:get|get_opt|list|watch|patch)_metadata\b",
     "kube-core", ["src/metadata.rs", "src/request.rs"]),
]

VERSION = r"v\d+(?:(?:alpha|beta)\d+)?"


# ---------------------------------------------------------------------------------------------
# Rust sources


def blank_comments_and_strings(text: str) -> tuple[str, list[tuple[int, int, str]]]:
    """The code with comments removed and string/char contents blanked (same length, so that
    positions match the original), and the string literals as (start, end, value)."""
    out = list(text)
    strings = []
    i, n = 0, len(text)

    def blank(a: int, b: int) -> None:
        for k in range(a, b):
            if out[k] != "\n":
                out[k] = " "

    while i < n:
        c = text[i]
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            blank(i, end)
            i = end
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(i, j)
            i = j
        elif (m := re.compile(r'b?r(#*)"').match(text, i)) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            close = '"' + m.group(1)
            end = text.find(close, m.end())
            end = n if end < 0 else end
            strings.append((i, end + len(close), text[m.end():end]))
            blank(m.end(), end)
            i = end + len(close)
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            strings.append((i, j + 1, text[i + 1:j]))
            blank(i + 1, j)
            i = j + 1
        elif c == "'":
            # A char literal ('x', '\n', '{'), or a lifetime ('a), which is left alone.
            if text.startswith("\\", i + 1):
                end = text.find("'", i + 2)
                blank(i + 1, end)
                i = end + 1
            elif i + 2 < n and text[i + 2] == "'":
                blank(i + 1, i + 2)
                i += 3
            else:
                i += 1
        else:
            i += 1
    return "".join(out), strings


def matching_brace(code: str, start: int) -> int:
    depth = 0
    for k in range(start, len(code)):
        if code[k] == "{":
            depth += 1
        elif code[k] == "}":
            depth -= 1
            if depth == 0:
                return k + 1
    return len(code)


CFG_TEST = re.compile(r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*")


def without_test_code(code: str) -> tuple[str, list[str]]:
    """The code with its `#[cfg(test)]` items blanked, and the test modules kept in files of
    their own (`#[cfg(test)] mod tests;`)."""
    out = list(code)
    test_files = []
    for m in CFG_TEST.finditer(code):
        rest = code[m.end():]
        if file_module := re.match(r"(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;", rest):
            test_files.append(file_module.group(1))
            end = m.end() + file_module.end()
        elif re.match(r"(?:pub(?:\([^)]*\))?\s+)?use\b", rest):
            end = code.index(";", m.end()) + 1
        else:
            semicolon, brace = code.find(";", m.end()), code.find("{", m.end())
            end = semicolon + 1 if brace < 0 or 0 <= semicolon < brace else matching_brace(code, brace)
        for k in range(m.start(), end):
            if out[k] != "\n":
                out[k] = " "
    return "".join(out), test_files


@dataclass
class RustFile:
    path: pathlib.Path
    code: str  # comments and test code removed, strings blanked
    text: str  # the same with the strings in place
    strings: list[str]  # the literals outside test code

    @classmethod
    def read(cls, path: pathlib.Path) -> tuple["RustFile", list[pathlib.Path]]:
        original = path.read_text()
        blanked, strings = blank_comments_and_strings(original)
        code, test_modules = without_test_code(blanked)
        kept = [(start, end, value) for start, end, value in strings if code[start] != " "]  # test code is blanked
        text = list(code)
        for start, end, _ in kept:
            text[start:end] = original[start:end]
        module_dir = path.parent if path.name in ("mod.rs", "lib.rs", "main.rs") else path.with_suffix("")
        test_files = [p for name in test_modules for p in (module_dir / f"{name}.rs", module_dir / name)]
        return cls(path, code, "".join(text), [value for _, _, value in kept]), test_files


def rust_files(roots: list[pathlib.Path]) -> list[RustFile]:
    """Every .rs file below `roots` (files or folders), less the test modules they declare."""
    files, excluded = [], []
    for root in roots:
        for path in sorted([root] if root.is_file() else root.rglob("*.rs")):
            rust, test_files = RustFile.read(path)
            files.append(rust)
            excluded.extend(test_files)
    return [f for f in files if not any(f.path == t or t in f.path.parents for t in excluded)]


def expand_use_tree(tree: str, prefix: str = "") -> list[tuple[str, str]]:
    """`a::{b::C, d as E, f::*}` → [("a::b::C", "C"), ("a::d", "E"), ("a::f::*", "*")]."""
    tree = tree.strip()
    brace = tree.find("{")
    if brace < 0:
        path, alias = re.fullmatch(r"(.*?)(?:\s+as\s+(\w+))?", tree, re.S).groups()
        path = re.sub(r"::self$", "", prefix + re.sub(r"\s+", "", path)).lstrip(":")
        return [(path, alias or path.rsplit("::", 1)[-1])]
    head, inner = re.sub(r"\s+", "", tree[:brace]), tree[brace + 1:matching_brace(tree, brace) - 1]
    parts, depth, start = [], 0, 0
    for k, ch in enumerate(inner):
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            parts.append(inner[start:k])
            start = k + 1
    parts.append(inner[start:])
    return [item for part in parts if part.strip() for item in expand_use_tree(part, prefix + head)]


class K8sOpenapi:
    """The k8s-openapi sources of the Kubernetes version the build selects."""

    def __init__(self, root: pathlib.Path):
        self.root = root

    def api_version(self, path: str) -> str | None:
        """The group/version of a `k8s_openapi::…::Type` path; None for a module or a type that
        is no resource."""
        module = self.root
        segments = path.split("::")[1:]
        for k, segment in enumerate(segments):
            if (module / segment).is_dir():
                module = module / segment
                continue
            if k != len(segments) - 1 or not segment[:1].isupper():
                return None
            for source in module.glob("*.rs"):
                text = source.read_text()
                if re.search(rf"\bpub struct {segment}\b", text):
                    m = re.search(rf"impl crate::Resource for {segment} \{{.*?const API_VERSION: &'static str = \"([^\"]+)\"", text, re.S)
                    return m.group(1) if m else None
            return None
        return None

    def types_of(self, path: str) -> set[str]:
        module = self.root.joinpath(*path.split("::")[1:])
        if not module.is_dir():
            return set()
        return {m for source in module.glob("*.rs") for m in re.findall(r"\bpub struct (\w+)", source.read_text())}

    def known_api_versions(self) -> set[str]:
        return {m for source in self.root.rglob("*.rs")
                for m in re.findall(r"const API_VERSION: &'static str = \"([^\"]+)\"", source.read_text())}


def k8s_openapi_paths(rust: RustFile, k8s: K8sOpenapi) -> set[str]:
    """The `k8s_openapi::…` paths a file names: in `use` declarations and inline."""
    paths = set()
    aliases = {}
    for m in re.finditer(r"\buse\s+([^;]+);", rust.code):
        for path, alias in expand_use_tree(m.group(1)):
            if path.startswith("k8s_openapi::"):
                paths.add(path)
                aliases[alias] = path
    for m in re.finditer(r"\bk8s_openapi(?:::\w+)+", rust.code):
        paths.add(m.group(0))
    for alias, path in aliases.items():
        if alias == "*":  # a glob: the module's types the file names
            module = path.removesuffix("::*")
            paths |= {f"{module}::{t}" for t in k8s.types_of(module) if re.search(rf"\b{t}\b", rust.code)}
        else:  # an alias of a module: `alias::Type`
            paths |= {f"{path}::{rest}" for rest in re.findall(rf"(?<![\w:]){re.escape(alias)}::(\w+(?:::\w+)*)", rust.code)}
    return paths


def api_versions_in(files: list[RustFile], k8s: K8sOpenapi) -> dict[str, set[str]]:
    """Every group/version the files name, with where (file:path) for the failure messages."""
    found: dict[str, set[str]] = {}
    known = k8s.known_api_versions()

    def add(api_version: str, where: str) -> None:
        found.setdefault(api_version, set()).add(where)

    for rust in files:
        here = str(rust.path)
        for path in k8s_openapi_paths(rust, k8s):
            if api_version := k8s.api_version(path):
                add(api_version, f"{here}: {path}")
        for m in re.finditer(r"#\[kube\(", rust.code):
            attribute = rust.text[m.start():matching_paren(rust.code, m.end() - 1)]
            group = re.search(r'\bgroup\s*=\s*"([^"]+)"', attribute)
            version = re.search(r'\bversion\s*=\s*"([^"]+)"', attribute)
            if group and version:
                add(f"{group.group(1)}/{version.group(1)}", f"{here}: #[kube(group, version)]")
        for value in rust.strings:
            if re.fullmatch(rf"[a-z0-9-]+(?:\.[a-z0-9-]+)+/{VERSION}", value) or (value in known and "/" in value):
                add(value, f"{here}: \"{value}\"")
            for group, version in re.findall(rf"\bg=([a-z0-9.-]+);v=({VERSION})\b", value):
                add(f"{group}/{version}", f"{here}: \"{value}\"")
        for group, version in re.findall(rf'\bgvk?\(\s*"([a-z0-9.-]*)"\s*,\s*"({VERSION})"', rust.text):
            add(f"{group}/{version}" if group else version, f"{here}: gvk(\"{group}\", \"{version}\")")
    return found


def matching_paren(code: str, start: int) -> int:
    depth = 0
    for k in range(start, len(code)):
        depth += code[k] == "("
        depth -= code[k] == ")"
        if depth == 0:
            return k + 1
    return len(code)


@dataclass
class Cargo:
    operator_sources: list[pathlib.Path]
    crates: dict[str, pathlib.Path]  # every package's folder, by name
    k8s_openapi: K8sOpenapi
    k8s_openapi_version: str
    k8s_openapi_features: list[str]  # as the operator's Cargo.toml asks
    kubernetes_of_types: str  # the Kubernetes version of the types: "1.33"


@pytest.fixture(scope="module")
def cargo() -> Cargo:
    host = re.search(r"^host: (\S+)", subprocess.run(["rustc", "-vV"], capture_output=True, text=True, check=True).stdout, re.M).group(1)
    metadata = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", host],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout)
    packages = {p["id"]: p for p in metadata["packages"]}
    operator = next(p for p in metadata["packages"] if p["manifest_path"] == str(ROOT / "Cargo.toml"))
    folder = lambda p: pathlib.Path(p["manifest_path"]).parent  # noqa: E731
    # The operator's package and the workspace crates it depends on (not for tests only).
    sources = [folder(operator) / "src"] + [pathlib.Path(d["path"]) / "src" for d in operator["dependencies"]
                                            if d.get("path") and d.get("kind") is None]
    k8s_dependency = next(d for d in operator["dependencies"] if d["name"] == "k8s-openapi" and d.get("kind") is None)
    node = next(n for n in metadata["resolve"]["nodes"] if packages[n["id"]]["name"] == "k8s-openapi")
    k8s_package = packages[node["id"]]
    (selected,) = [f for f in node["features"] if re.fullmatch(r"v\d+_\d+", f)]
    return Cargo(
        operator_sources=sources,
        crates={p["name"]: folder(p) for p in metadata["packages"]},
        k8s_openapi=K8sOpenapi(folder(k8s_package) / "src" / selected),
        k8s_openapi_version=k8s_package["version"],
        k8s_openapi_features=k8s_dependency["features"],
        kubernetes_of_types=selected.removeprefix("v").replace("_", "."),
    )


def code_api_versions(cargo: Cargo) -> dict[str, set[str]]:
    operator = rust_files(cargo.operator_sources)
    found = api_versions_in(operator, cargo.k8s_openapi)
    code = "\n".join(f.code for f in operator)
    for use, crate, files in LIBRARY_CALLS:
        if not re.search(use, code):
            continue
        library = api_versions_in(rust_files([cargo.crates[crate] / f for f in files]), cargo.k8s_openapi)
        assert library, f"{crate}'s {files} name no API any more: update LIBRARY_CALLS"
        for api_version, where in library.items():
            found.setdefault(api_version, set()).update(where)
    return found


# ---------------------------------------------------------------------------------------------
# The chart and deploy/


def values_with_every_option() -> dict:
    """values.yaml with every boolean that is false by default set to true: every optional
    object (ServiceMonitor, PrometheusRule, PodDisruptionBudget, dashboard, leader election…)."""
    def turn_on(node):
        if isinstance(node, dict):
            return {k: turn_on(v) for k, v in node.items()}
        return True if node is False else node
    values = turn_on(yaml.safe_load((CHART / "values.yaml").read_text()))
    values["credentials"]["apiKey"] = "key"  # the chart's Secret
    return values


def chart_renders() -> list[tuple[str, str, list[dict]]]:
    """(which values, template, its documents) of the chart rendered offline with its defaults, with
    every option, and with every option in one namespace (Roles instead of ClusterRoles)."""
    chart = helm.Chart.load(str(CHART))
    every = values_with_every_option()
    renders = []
    for label, values in (("defaults", {}), ("every option", every),
                          ("every option, one namespace", {**every, "watchNamespace": "team-a"})):
        for path, text in sorted(chart.render(values, name=RELEASE, namespace=NAMESPACE).items()):
            if path.endswith(".yaml"):
                renders.append((label, path.split("/", 1)[1], [d for d in yaml.safe_load_all(text) if d]))
    return renders


def documents(path: pathlib.Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_every_template_renders_something_in_one_of_the_renders():
    """Else an object that only other values render would escape the list."""
    templates = {t["name"] for t in helm.Chart.load(str(CHART)).templates if t["name"].endswith(".yaml")}
    rendered = {template for _, template, docs in chart_renders() if docs}
    assert templates <= rendered, f"templates none of the renders produce: {sorted(templates - rendered)}"


@pytest.fixture(scope="module")
def chart_on_the_test_bed(kube) -> list[dict]:
    """The chart as Helm renders it for the 1.20 test bed (a server-side dry run): the APIs it
    picks for an older server. Without the CRDs (the test bed's exist, owned by another
    release) and prometheus-operator's kinds (the test bed has none)."""
    namespace = kube.namespace("versions")
    values = values_with_every_option()
    values["crds"]["enabled"] = False
    values["metrics"]["serviceMonitor"]["enabled"] = values["metrics"]["prometheusRule"]["enabled"] = False
    try:
        config = helm.Config(kubeconfig_path=kube.kubeconfig, namespace=namespace)
        release = config.install(str(CHART), namespace.replace("versions", "neo-versions"), values,
                                 namespace=namespace, dry_run="server")
        return [d for d in yaml.safe_load_all(release["manifest"]) if d]
    finally:
        kube.request("DELETE", f"/api/v1/namespaces/{namespace}", ok=None)


def used_api_versions(cargo: Cargo, chart_on_the_test_bed: list[dict]) -> dict[str, dict[str, set[str]]]:
    """group/version → place (operator, chart, deploy/) → where."""
    used: dict[str, dict[str, set[str]]] = {}

    def add(api_version: str, place: str, where: str) -> None:
        used.setdefault(api_version, {}).setdefault(place, set()).add(where)

    for api_version, where in code_api_versions(cargo).items():
        for w in where:
            add(api_version, "operator", w)
    for label, template, docs in chart_renders():
        for doc in docs:
            add(doc["apiVersion"], "chart", f"{template}: {doc['kind']} ({label})")
    for doc in chart_on_the_test_bed:
        add(doc["apiVersion"], "chart", f"{doc['kind']} (a server-side dry run on the test bed)")
    for path in sorted((CHART / "crds").glob("*.yaml")):
        for doc in documents(path):
            add(doc["apiVersion"], "chart", str(path.relative_to(ROOT)))
    for path in sorted((ROOT / "deploy").glob("*.yaml")):
        for doc in documents(path):
            add(doc["apiVersion"], "deploy/", f"{path.relative_to(ROOT)}: {doc['kind']}")
    return used


# ---------------------------------------------------------------------------------------------
# The README's table


@dataclass(frozen=True)
class Served:
    since: tuple[int, int] | None  # None: not served by Kubernetes itself
    until: tuple[int, int] | None = None

    def at(self, version: tuple[int, int]) -> bool:
        return self.since is not None and self.since <= version and (self.until is None or version <= self.until)


@dataclass
class Row:
    api_version: str
    places: set[str]
    served: Served


def minor(text: str) -> tuple[int, int]:
    major, minor_ = text.split(".")
    return int(major), int(minor_)


def section() -> str:
    text = README.read_text()
    assert SECTION in text, f"README has no {SECTION!r} section"
    body = text.split(SECTION, 1)[1]
    return re.split(r"^#{1,3} ", body, maxsplit=1, flags=re.M)[0]


def table() -> dict[str, Row]:
    lines = [l for l in section().splitlines() if l.startswith("|")]
    header = [c.strip().lower() for c in lines[0].strip("|").split("|")]
    assert header[0] == "api" and "used by" in header and "served by" in header, header
    rows = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        record = dict(zip(header, cells))
        api_version = re.fullmatch(r"`([^`]+)`", record["api"]).group(1)
        places = {p for p in PLACES if re.search(rf"(?<![\w/]){re.escape(p)}(?![\w/])", record["used by"].replace("`", ""))}
        served = record["served by"]
        if m := re.match(r"Kubernetes (\d+\.\d+) and later", served):
            range_ = Served(minor(m.group(1)))
        elif m := re.match(r"Kubernetes (\d+\.\d+) to (\d+\.\d+)", served):
            range_ = Served(minor(m.group(1)), minor(m.group(2)))
        else:
            assert not served.startswith("Kubernetes"), f"{api_version}: cannot read {served!r}"
            range_ = Served(None)
        assert api_version not in rows, f"{api_version} has two rows"
        rows[api_version] = Row(api_version, places, range_)
    return rows


def group_of(api_version: str) -> str:
    return api_version.rsplit("/", 1)[0] if "/" in api_version else ""


def minimum(rows: dict[str, Row]) -> tuple[int, int]:
    """The oldest Kubernetes that serves every group the table names: per group its oldest
    version, the versions of a group together served from there on to the newest release."""
    by_group: dict[str, list[Served]] = {}
    for row in rows.values():
        if row.served.since is not None:
            by_group.setdefault(group_of(row.api_version), []).append(row.served)
    oldest = {}
    for group, served in by_group.items():
        served.sort(key=lambda s: s.since)
        for older, newer in zip(served, served[1:]):
            assert older.until is not None and older.until >= (newer.since[0], newer.since[1] - 1), \
                f"group {group!r}: a Kubernetes release between its versions serves none of them: {served}"
        assert any(s.until is None for s in served), \
            f"group {group!r}: no version of it is served by the newest Kubernetes: {served}"
        oldest[group] = served[0].since
    return max(oldest.values())


# ---------------------------------------------------------------------------------------------
# The tests


def test_the_table_names_every_api_the_operator_the_chart_and_deploy_use(cargo, chart_on_the_test_bed):
    used = used_api_versions(cargo, chart_on_the_test_bed)
    rows = table()
    missing = {a: {p: sorted(w)[:3] for p, w in places.items()} for a, places in used.items() if a not in rows}
    assert not missing, f"used, but not in the README's table: {json.dumps(missing, indent=1)}"
    unused = sorted(set(rows) - set(used))
    assert not unused, f"in the README's table, but used by nothing: {unused}"
    for api_version, row in rows.items():
        assert row.places == set(used[api_version]), (
            f"{api_version}: the table says it is used by {sorted(row.places)}, but it is by "
            f"{ {p: sorted(w)[:3] for p, w in used[api_version].items()} }")


def test_the_code_derivation_finds_the_apis_it_should(cargo, tmp_path):
    """The parser itself, on code written each way the operator could write it; test code,
    comments and a non-resource type (`LeaseSpec`) name no API."""
    sample = tmp_path / "sample.rs"
    sample.write_text('''
use k8s_openapi::api::{core::v1::{Secret as KubeSecret, Namespace}, apps::v1 as apps};
use k8s_openapi::api::batch::v1::*;
use k8s_openapi::api::coordination::v1::LeaseSpec;
#[cfg(test)]
mod tests { use k8s_openapi::api::storage::v1::StorageClass; fn g() { gvk("autoscaling", "v2", "X"); } }
// k8s_openapi::api::networking::v1::Ingress in a comment
fn f(_: apps::Deployment, _: Job, _: k8s_openapi::api::discovery::v1::EndpointSlice) {
    let _ = "x.example.com/v2beta1";
    let _ = GroupVersionKind::gvk("policy", "v1", "PodDisruptionBudget");
    let _ = '{';
}
#[kube(group = "events.ngrok.io", version = "v1alpha1", kind = "X")]
struct XSpec {}
''')
    found = set(api_versions_in(rust_files([sample]), cargo.k8s_openapi))
    assert found == {"v1", "apps/v1", "batch/v1", "discovery.k8s.io/v1", "x.example.com/v2beta1",
                     "policy/v1", "events.ngrok.io/v1alpha1"}, found


def test_the_test_bed_serves_what_the_table_says(kube):
    version = kube.get("/version").json()
    test_bed = (int(version["major"]), int(re.match(r"\d+", version["minor"]).group(0)))
    stated = re.search(r"real kube-apiserver (\d+\.\d+)", section())
    assert stated and minor(stated.group(1)) == test_bed, f"the section names the test bed's version {test_bed}"
    served = set(kube.get("/api").json()["versions"])
    served |= {v["groupVersion"] for g in kube.get("/apis").json()["groups"] for v in g["versions"]}
    for api_version, row in table().items():
        if row.served.since is None:
            continue
        if group_of(api_version) == "meta.k8s.io":
            # Not in discovery: a format every resource answers in. A metadata-only list, as the
            # operator's metadata watches ask for it, is what shows it served.
            group, version = api_version.split("/")
            answer = kube.session.get(kube.server + "/api/v1/namespaces?limit=1", headers={
                "Accept": f"application/json;as=PartialObjectMetadataList;g={group};v={version}"}).json()
            is_served = answer.get("apiVersion") == api_version and answer.get("kind") == "PartialObjectMetadataList"
        else:
            is_served = api_version in served
        assert is_served == row.served.at(test_bed), (
            f"{api_version}: the table says Kubernetes {'serves' if row.served.at(test_bed) else 'does not serve'} it "
            f"in {test_bed[0]}.{test_bed[1]}, and the test bed {'does' if is_served else 'does not'}")


def test_the_minimum_version_is_the_tables_in_the_chart_and_the_readme():
    oldest = minimum(table())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["kubeVersion"] == f">={oldest[0]}.{oldest[1]}.0-0", \
        f"Chart.yaml's kubeVersion {chart['kubeVersion']!r}; the table's minimum is {oldest}"
    stated = re.search(r"Kubernetes \*\*(\d+\.\d+) or newer\*\*", section())
    assert stated and minor(stated.group(1)) == oldest, f"the section states the minimum, {oldest}"
    # No other sentence of the README claims another minimum.
    prose = "\n".join(l for l in README.read_text().splitlines() if not l.startswith("|"))
    claims = re.findall(r"Kubernetes(?: versions?)? (?:from |≥ ?|>= ?)?(1\.\d+)(?:\+| or newer| or later| and later| on\b)", prose)
    assert {minor(c) for c in claims} <= {oldest}, f"the README claims minimums {claims}; the table's is {oldest}"


def test_the_section_names_the_types_the_client_is_compiled_against(cargo):
    stated = re.search(r"k8s-openapi (\d+\.\d+) with its `(\w+)` feature, which is Kubernetes (\d+\.\d+)'s API types", section())
    assert stated, "the section names k8s-openapi's version, feature and Kubernetes version"
    version, feature, kubernetes = stated.groups()
    assert cargo.k8s_openapi_version.startswith(version + "."), f"k8s-openapi is {cargo.k8s_openapi_version}"
    assert feature in cargo.k8s_openapi_features, f"the operator asks k8s-openapi for {cargo.k8s_openapi_features}"
    assert kubernetes == cargo.kubernetes_of_types, f"the build selects Kubernetes {cargo.kubernetes_of_types}'s types"
