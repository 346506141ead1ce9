#!/usr/bin/env bash
# Installs the test bed: etcd, kube-apiserver and kube-controller-manager, built from Debian's
# `kubernetes` source package with Go 1.15 (a newer Go builds a server that panics on custom-resource
# writes). The build is cached outside the repository, so only the first run on a machine pays for it.
#
# Prints the directory holding the binaries on its last line of stdout.
# Honours binaries that already exist: KUBE_APISERVER + ETCD (+ KUBE_CONTROLLER_MANAGER) or
# KUBEBUILDER_ASSETS, in which case nothing is built.
set -euo pipefail

CACHE="${NGROK_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ngrok-events-operator/testbed}"
BIN="$CACHE/bin"
K8S_VERSION_WANTED="1.20"
log() { echo "testbed: $*" >&2; }

# The URI of the machine's main Debian archive: the first enabled `deb`/`deb-src` source, in
# /etc/apt/sources.list.d/*.sources (deb822) or in sources.list / *.list (one-line style), whose
# suite is a release (`bookworm`, not `bookworm-security`). NGROK_TESTBED_DEBIAN_ARCHIVE overrides.
debian_archive() {
  if [[ -n "${NGROK_TESTBED_DEBIAN_ARCHIVE:-}" ]]; then
    echo "${NGROK_TESTBED_DEBIAN_ARCHIVE%/}"
    return
  fi
  local release='^(buster|bullseye|bookworm|trixie|forky|sid|unstable|testing|stable|oldstable)$'
  local uri
  uri=$(
    {
      for f in /etc/apt/sources.list.d/*.sources; do
        [[ -r "$f" ]] || continue
        awk -v release="$release" '
          BEGIN { RS = ""; FS = "\n" }
          {
            types = ""; uris = ""; suites = ""; enabled = "yes"
            for (i = 1; i <= NF; i++) {
              line = $i
              if (line ~ /^[ \t]*#/) continue
              key = tolower(line); sub(/:.*/, "", key)
              value = line; sub(/^[^:]*:[ \t]*/, "", value)
              if (key == "types") types = value
              else if (key == "uris") uris = value
              else if (key == "suites") suites = value
              else if (key == "enabled") enabled = tolower(value)
            }
            if (enabled == "no" || types !~ /(^|[ \t])deb(-src)?([ \t]|$)/) next
            n = split(suites, s, /[ \t]+/)
            for (j = 1; j <= n; j++) if (s[j] ~ release) { split(uris, u, /[ \t]+/); print u[1]; next }
          }' "$f"
      done
      for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [[ -r "$f" ]] || continue
        awk -v release="$release" '
          $1 == "deb" || $1 == "deb-src" {
            i = 2
            if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
            if ($(i + 1) ~ release) print $i
          }' "$f"
      done
    } | head -1
  )
  if [[ -z "$uri" ]]; then
    log "no Debian archive found in the machine's apt sources; set NGROK_TESTBED_DEBIAN_ARCHIVE (e.g. https://mirror.example/debian)"
    return 1
  fi
  echo "${uri%/}"
}
[[ "${1:-}" == --print-debian-archive ]] && { debian_archive; exit; }

if [[ -n "${KUBEBUILDER_ASSETS:-}" || ( -n "${KUBE_APISERVER:-}" && -n "${ETCD:-}" ) ]]; then
  log "using binaries given by the environment; nothing to build"
  echo "${KUBEBUILDER_ASSETS:-$(dirname "$KUBE_APISERVER")}"
  exit 0
fi

need_apt=()
command -v etcd >/dev/null || need_apt+=(etcd-server)
command -v kubectl >/dev/null || need_apt+=(kubernetes-client)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v dpkg-source >/dev/null || need_apt+=(dpkg-dev)
command -v make >/dev/null || need_apt+=(make)
command -v rsync >/dev/null || need_apt+=(rsync)
if ((${#need_apt[@]})); then
  log "apt-get install ${need_apt[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
fi
# Debian ships etcd as a system service; the test bed starts its own on loopback.
if systemctl is-active --quiet etcd 2>/dev/null; then systemctl stop etcd >&2 || true; fi

if [[ -x "$BIN/kube-apiserver" && -x "$BIN/kube-controller-manager" ]]; then
  log "cached build in $BIN"
  echo "$BIN"
  exit 0
fi

mkdir -p "$CACHE/apt/lists/partial" "$CACHE/apt/archives/partial" "$CACHE/src" "$BIN"
# A private apt configuration: bullseye for Go 1.15, bookworm deb-src for the kubernetes source,
# from the Debian archive the machine already uses (a corporate mirror too). The machine's own
# package sources are left as they are.
ARCHIVE=$(debian_archive) || exit 1
log "Debian archive: $ARCHIVE"
cat >"$CACHE/apt/sources.list" <<SRC
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $ARCHIVE bullseye main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $ARCHIVE bookworm main
SRC
APT=(apt-get -qq -o "Dir::Etc::SourceList=$CACHE/apt/sources.list" -o "Dir::Etc::SourceParts=/dev/null"
     -o "Dir::State::Lists=$CACHE/apt/lists" -o "Dir::Cache::Archives=$CACHE/apt/archives"
     -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o "APT::Sandbox::User=root")
log "updating the private apt lists"
"${APT[@]}" update >&2

GOROOT_DIR="$CACHE/go1.15/usr/lib/go-1.15"
if [[ ! -x "$GOROOT_DIR/bin/go" ]]; then
  log "fetching Go 1.15 from bullseye"
  (cd "$CACHE/apt/archives" && "${APT[@]}" download golang-1.15-go golang-1.15-src >&2)
  for deb in "$CACHE"/apt/archives/golang-1.15-*.deb; do dpkg-deb -x "$deb" "$CACHE/go1.15"; done
fi

SRC_DIR=$(ls -d "$CACHE"/src/kubernetes-"$K8S_VERSION_WANTED"*/ 2>/dev/null | head -1 || true)
if [[ -z "$SRC_DIR" ]]; then
  log "fetching Debian's kubernetes source package"
  (cd "$CACHE/src" && "${APT[@]}" source kubernetes >&2)
  SRC_DIR=$(ls -d "$CACHE"/src/kubernetes-"$K8S_VERSION_WANTED"*/ | head -1)
fi

# Debian's debian/rules builds inside a GOPATH layout; do the same.
GOPATH_DIR="$CACHE/gopath"
mkdir -p "$GOPATH_DIR/src/k8s.io"
ln -sfn "${SRC_DIR%/}" "$GOPATH_DIR/src/k8s.io/kubernetes"
log "building kube-apiserver and kube-controller-manager (a few minutes on 2 cores)"
(
  cd "$GOPATH_DIR/src/k8s.io/kubernetes"
  export GOROOT="$GOROOT_DIR" GOPATH="$GOPATH_DIR" PATH="$GOROOT_DIR/bin:$PATH"
  export CGO_ENABLED=0 GO111MODULE=off GOFLAGS=-mod=vendor GOCACHE="$CACHE/gocache" KUBE_GIT_TREE_STATE=clean
  export KUBE_GIT_VERSION="v$(sed -n '1s/.*(\([0-9.]*\).*/\1/p' debian/changelog 2>/dev/null || echo 1.20.2)"
  rm -rf _output   # a half-finished earlier build leaves stubs that make would trust
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >&2
  cp _output/local/go/bin/kube-apiserver _output/local/go/bin/kube-controller-manager "$BIN/"
)
log "built into $BIN"
echo "$BIN"
