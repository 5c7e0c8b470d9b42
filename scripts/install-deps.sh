#!/usr/bin/env bash
# Installs every system package clip, its tests and its demo need on Debian 12.
# Idempotent: packages already present are left alone; safe to run repeatedly.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: must run as root (it uses apt-get)" >&2
  exit 1
fi

packages=(
  containerd runc            # the container runtime clip plugs into
  fuse3 libfuse3-dev pkg-config  # FUSE: fusermount3, and libfuse3 for clip's FUSE server addon (clip_fuse)
  protobuf-compiler libprotobuf-dev  # protoc and the well-known .proto types, used by the build
  docker-registry            # a real OCI registry for tests and the demo
  skopeo umoci               # build and push test images offline
  busybox-static             # tiny static userland for test images
  g++ make python3 zlib1g-dev libzstd-dev  # native addons (better-sqlite3, clip_fuse, clip_indexer: zlib, zstd)
  zstd                       # tests build zstd layers
  apache2-utils              # htpasswd: the CRI keychain test runs a registry with basic authentication
  attr                       # getfattr, used by tests to compare extended attributes
  iproute2 kmod util-linux ca-certificates
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps.sh: all system packages present"
  exit 0
fi

echo "install-deps.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
