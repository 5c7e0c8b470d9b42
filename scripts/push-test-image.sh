#!/usr/bin/env bash
# Push one tag of an OCI layout to a plain-http registry with skopeo.
#
#   scripts/push-test-image.sh LAYOUT_DIR TAG REGISTRY_ADDR REPO
#   e.g. scripts/push-test-image.sh /tmp/x/layout multilayer 127.0.0.1:41234 clip/test
#   -> pushes ADDR/REPO:TAG and prints the manifest digest as stored in the registry.
#
# Notes (skopeo 1.9):
#  * --dest-tls-verify=false makes skopeo fall back from https to plain http.
#  * --insecure-policy: do not depend on /etc/containers/policy.json being present.
#  * The OCI manifest and the gzip layers are copied as they are (same digests as in the
#    layout), so digests printed by build-test-image.py stay valid in the registry.
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: $0 LAYOUT_DIR TAG REGISTRY_ADDR REPO" >&2; exit 2; }
layout=$1 tag=$2 addr=$3 repo=$4
[ -f "$layout/index.json" ] || { echo "$0: $layout is not an OCI layout" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
timeout 120 skopeo --insecure-policy copy --quiet \
  --dest-tls-verify=false --digestfile "$tmp/digest" \
  "oci:$layout:$tag" "docker://$addr/$repo:$tag" >&2
cat "$tmp/digest"; echo
