#!/usr/bin/env bash
# Installs the test bed: etcd, kube-apiserver and kube-controller-manager, built from Debian's
# `kubernetes` source package with Go 1.15 (a newer Go builds a server that panics on custom-resource
# writes). The build is cached outside the repository, so only the first run on a machine pays for it.
#
#   testbed/install.sh                        the API server tier
#   testbed/install.sh --with-node            and the node tier: kubelet, kube-scheduler and
#                                             kube-proxy from the same source, Debian's containerd,
#                                             runc and CNI plugins, and the pause image
#   testbed/install.sh --print-debian-archive the Debian archive it uses
#   testbed/install.sh --crd-server-1.36      a Kubernetes 1.36 apiextensions-apiserver (CRDs and
#                                             custom resources only) built from Debian sid's Go
#                                             sources, for the CEL tests; prints its directory
#   testbed/install.sh --crd-server-1.36-pins the package pins sid would give today
#
# Prints the directory holding the binaries on its last line of stdout.
# Honours binaries that already exist: KUBE_APISERVER + ETCD (+ KUBE_CONTROLLER_MANAGER) or
# KUBEBUILDER_ASSETS, in which case nothing is built.
set -euo pipefail

CACHE="${NGROK_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ngrok-events-operator/testbed}"
BIN="$CACHE/bin"
K8S_VERSION_WANTED="1.20"
# The sandbox image's name; the testbed crate configures containerd and the kubelet with it.
PAUSE_IMAGE="localhost/testbed/pause:3.6"
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

# --- The Kubernetes 1.36 CRD server ------------------------------------------------------------
# apiextensions-apiserver (CRDs and custom resources only, on etcd) built from Debian sid's
# golang-k8s-apiextensions-apiserver-dev 0.36 in GOPATH mode with sid's Go 1.26, following
# /work/shared/notes/crd-server-1.36.md: the pinned packages of testbed/crd-server-1.36/packages.lock,
# downloaded with an isolated apt configuration (the machine's own is untouched), extracted into a
# private root, built with the three source changes of testbed/crd-server-1.36/overlay/ given to
# `go build -overlay`. Only the binary is kept, in $CACHE/crd-server-1.36/bin.
CRD136_DIR="$CACHE/crd-server-1.36"
CRD136_FILES="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/crd-server-1.36"
CRD136_VERSION="v1.36.4"   # the Kubernetes version of golang-k8s-apiextensions-apiserver-dev 0.36.4

# The isolated apt configuration for sid: its own sources, lists, caches and an empty dpkg status.
crd136_apt_setup() {
  local archive apt="$CRD136_DIR/apt"
  archive=$(debian_archive) || exit 1
  log "Debian archive: $archive (sid, for the 1.36 CRD server)"
  mkdir -p "$apt/lists/partial" "$apt/archives/partial" "$apt/state" "$apt/cache"
  : >"$apt/status"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $archive sid main" >"$apt/sources.list"
  cat >"$apt/apt.conf" <<CONF
Dir::Etc::SourceList "$apt/sources.list";
Dir::Etc::SourceParts "/dev/null";
Dir::Etc::Preferences "/dev/null";
Dir::Etc::PreferencesParts "/dev/null";
Dir::State "$apt/state";
Dir::State::Lists "$apt/lists";
Dir::State::status "$apt/status";
Dir::Cache "$apt/cache";
Dir::Cache::Archives "$apt/archives";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Default-Release "sid";
APT::Sandbox::User "root";
CONF
  export APT_CONFIG="$apt/apt.conf"
  log "updating the private sid apt lists"
  apt-get -qq update >&2
}

# Prints the current closure, pinned, in packages.lock's form (to refresh the pins by hand).
crd136_pins() {
  local names
  names=$(
    {
      apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
        --no-replaces --no-enhances golang-k8s-apiextensions-apiserver-dev | grep -E '^golang-.*-dev$'
      echo golang-1.26-go
      echo golang-1.26-src
    } | sort -u
  )
  head -4 "$CRD136_FILES/packages.lock"   # the file's comment
  # shellcheck disable=SC2086
  apt-cache show --no-all-versions $names | awk '/^Package:/ { p = $2 } /^Version:/ { print p "=" $2 }' | sort -u
}

crd136_install() {
  local bin="$CRD136_DIR/bin/apiextensions-apiserver"
  if [[ -x "$bin" ]]; then
    log "cached 1.36 CRD server in $CRD136_DIR/bin"
    echo "$CRD136_DIR/bin"
    return
  fi
  local start=$SECONDS root="$CRD136_DIR/root" pins=() gone=() pin name want have
  crd136_apt_setup
  mapfile -t pins < <(grep -v '^#' "$CRD136_FILES/packages.lock" | grep .)
  # Every pinned version must still be in sid; say which are not, and what sid has now.
  declare -A available=()
  while IFS== read -r name have; do available[$name]+=" $have"; done < <(
    apt-cache show "${pins[@]%%=*}" 2>/dev/null | awk '/^Package:/ { p = $2 } /^Version:/ { print p "=" $2 }'
  )
  for pin in "${pins[@]}"; do
    name=${pin%%=*} want=${pin#*=}
    [[ " ${available[$name]:-} " == *" $want "* ]] || gone+=("$name $want (sid has:${available[$name]:- nothing})")
  done
  if ((${#gone[@]})); then
    log "Debian sid no longer has these pinned versions of the 1.36 CRD server's packages:"
    printf 'testbed:   %s\n' "${gone[@]}" >&2
    log "refresh the pins (testbed/install.sh --crd-server-1.36-pins > testbed/crd-server-1.36/packages.lock), build, and run tests/chart/test_crd_server_136.py"
    exit 1
  fi
  log "downloading ${#pins[@]} pinned sid packages (about 270 MB)"
  (cd "$CRD136_DIR/apt/archives" && apt-get -qq download "${pins[@]}" >&2)
  log "extracting them into $root"
  rm -rf "$root"
  mkdir -p "$root"
  for pin in "${pins[@]}"; do
    name=${pin%%=*} want=${pin#*=}
    # apt-get download names the file name_version(epoch ':' as %3a)_arch.deb
    dpkg-deb -x "$(ls "$CRD136_DIR"/apt/archives/"${name}_${want//:/%3a}"_*.deb)" "$root"
  done

  local gopath="$root/usr/share/gocode" src overlay
  src="$gopath/src/k8s.io/apiextensions-apiserver"
  # The overlay maps each changed file of the extracted source to the repository's copy.
  overlay="$CRD136_DIR/overlay.json"
  (
    cd "$CRD136_FILES/overlay"
    echo '{"Replace": {'
    find . -name '*.go' | sed 's|^\./||' | sort | while read -r f; do
      printf '  "%s": "%s",\n' "$src/$f" "$CRD136_FILES/overlay/$f"
    done | sed '$ s/,$//'
    echo '}}'
  ) >"$overlay"
  log "building apiextensions-apiserver $CRD136_VERSION with Go 1.26 (about 4.5 minutes on one core)"
  mkdir -p "$CRD136_DIR/bin"
  (
    cd "$src"
    export GOROOT="$root/usr/lib/go-1.26" GOPATH="$gopath" GOCACHE="$CRD136_DIR/gocache"
    export GO111MODULE=off GOTOOLCHAIN=local GOPROXY=off GOFLAGS= CGO_ENABLED=0
    local major=${CRD136_VERSION#v} minor
    minor=${major#*.} minor=${minor%%.*} major=${major%%.*}
    "$GOROOT/bin/go" build -trimpath -overlay "$overlay" \
      -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$CRD136_VERSION -X k8s.io/component-base/version.gitMajor=$major -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean" \
      -o "$bin.tmp" . >&2
  )
  mv "$bin.tmp" "$bin"
  # Only the binary is needed again: drop the 2.2 GB root, the packages, the apt lists and Go's
  # build cache (a rebuild fetches them again).
  rm -rf "$root" "$CRD136_DIR/gocache" "$CRD136_DIR/apt" "$overlay"
  log "built the 1.36 CRD server into $CRD136_DIR/bin in $((SECONDS - start)) s"
  echo "$CRD136_DIR/bin"
}

if [[ "${1:-}" == --crd-server-1.36-pins ]]; then
  crd136_apt_setup
  crd136_pins
  rm -rf "$CRD136_DIR/apt"
  exit
fi
if [[ "${1:-}" == --crd-server-1.36 ]]; then
  mkdir -p "$CRD136_DIR"
  exec 9>"$CRD136_DIR/.install.lock"
  flock 9
  crd136_install
  exit
fi

WITH_NODE=false
[[ "${1:-}" == --with-node ]] && WITH_NODE=true

if ! $WITH_NODE && [[ -n "${KUBEBUILDER_ASSETS:-}" || ( -n "${KUBE_APISERVER:-}" && -n "${ETCD:-}" ) ]]; then
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
if $WITH_NODE; then
  # The node: container runtime, OCI runtime, CNI plugins, the iptables kube-proxy and the
  # kubelet program, and a C compiler for the pause binary.
  command -v containerd >/dev/null || need_apt+=(containerd)
  command -v runc >/dev/null || need_apt+=(runc)
  [[ -x /usr/lib/cni/bridge ]] || need_apt+=(containernetworking-plugins)
  command -v iptables >/dev/null || need_apt+=(iptables)
  command -v gcc >/dev/null || need_apt+=(gcc libc6-dev)
fi
if ((${#need_apt[@]})); then
  log "apt-get install ${need_apt[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
fi
# Debian ships etcd and containerd as system services; the test bed starts its own.
for service in etcd containerd; do
  if systemctl is-active --quiet "$service" 2>/dev/null; then systemctl stop "$service" >&2 || true; fi
done

mkdir -p "$CACHE"
# One build at a time per cache (two test runs starting on a fresh machine).
exec 9>"$CACHE/.install.lock"
flock 9

wanted=(kube-apiserver kube-controller-manager)
$WITH_NODE && wanted+=(kubelet kube-scheduler kube-proxy)
missing=()
for binary in "${wanted[@]}"; do [[ -x "$BIN/$binary" ]] || missing+=("$binary"); done

if ((${#missing[@]} == 0)); then
  log "cached build in $BIN"
else
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
  log "building ${missing[*]} (a few minutes on 2 cores)"
  (
    cd "$GOPATH_DIR/src/k8s.io/kubernetes"
    export GOROOT="$GOROOT_DIR" GOPATH="$GOPATH_DIR" PATH="$GOROOT_DIR/bin:$PATH"
    export CGO_ENABLED=0 GO111MODULE=off GOFLAGS=-mod=vendor GOCACHE="$CACHE/gocache" KUBE_GIT_TREE_STATE=clean
    export KUBE_GIT_VERSION="v$(sed -n '1s/.*(\([0-9.]*\).*/\1/p' debian/changelog 2>/dev/null || echo 1.20.2)"
    rm -rf _output   # a half-finished earlier build leaves stubs that make would trust
    make WHAT="${missing[*]/#/cmd/}" >&2
    for binary in "${missing[@]}"; do cp "_output/local/go/bin/$binary" "$BIN/"; done
  )
  log "built into $BIN"
fi

if $WITH_NODE; then
  # No registry is reachable: the sandbox ("pause") image is built from the same source tree.
  IMAGES="$CACHE/images"
  if [[ ! -f "$IMAGES/pause.tar" ]]; then
    SRC_DIR=$(ls -d "$CACHE"/src/kubernetes-"$K8S_VERSION_WANTED"*/ | head -1)
    rootfs=$(mktemp -d)
    gcc -Os -static -DVERSION=v3.6-testbed -o "$rootfs/pause" "$SRC_DIR/build/pause/linux/pause.c"
    strip "$rootfs/pause"
    mkdir -p "$IMAGES"
    bash "$(dirname "${BASH_SOURCE[0]}")/docker-archive.sh" "$rootfs" "$PAUSE_IMAGE" \
      '{"Entrypoint":["/pause"],"User":"65535:65535"}' "$IMAGES/pause.tar.tmp"
    mv "$IMAGES/pause.tar.tmp" "$IMAGES/pause.tar"
    rm -rf "$rootfs"
    log "built the pause image $PAUSE_IMAGE into $IMAGES/pause.tar"
  fi
fi
echo "$BIN"
