#!/usr/bin/env bash
# Packs a directory into a one-layer image archive that `ctr images import` (and `docker load`)
# read: manifest.json, the image config and one layer tar. No registry, no daemon.
#
#   testbed/docker-archive.sh ROOTFS_DIR NAME:TAG[,NAME:TAG...] CONFIG_JSON OUT.tar
#
# CONFIG_JSON is the image config's "config" object (User, Entrypoint, Cmd, Labels, ...).
# The layer is reproducible: sorted, owned by root, every mtime 0.
set -euo pipefail
rootfs=$1 refs=$2 config=$3 out=$4

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$rootfs" -cf "$work/layer.tar" .
diff_id=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
arch=$(dpkg --print-architecture)   # Debian's names are OCI's for amd64 and arm64
printf '{"architecture":"%s","os":"linux","config":%s,"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$arch" "$config" "$diff_id" >"$work/config.json"
config_id=$(sha256sum "$work/config.json" | cut -d' ' -f1)
mv "$work/config.json" "$work/$config_id.json"
tags=\"${refs//,/\",\"}\"
printf '[{"Config":"%s.json","RepoTags":[%s],"Layers":["layer.tar"]}]' "$config_id" "$tags" >"$work/manifest.json"
tar --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$work" -cf "$out" manifest.json "$config_id.json" layer.tar
