#!/usr/bin/env bash
# End-to-end check of the test infrastructure with containerd's built-in overlayfs
# snapshotter (no clip): registry -> build + push test images -> containerd -> pull -> run.
# Everything lives in a fresh temp dir, is bounded by timeouts, and is stopped by PID on exit.
#
#   scripts/smoke-infra.sh            # prints "smoke-infra: 1 passed, 0 failed" on success
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S=$(mktemp -d /tmp/clip-smoke.XXXXXX)
cleanup() {
  "$here/containerd.sh" stop "$S" || true
  "$here/registry.sh" stop "$S" || true
  if grep -q " $S" /proc/self/mountinfo; then echo "smoke-infra: mounts left under $S" >&2; exit 1; fi
  rm -rf "$S"
}
trap cleanup EXIT
fail() { echo "smoke-infra: FAIL: $*" >&2; echo "smoke-infra: 0 passed, 1 failed"; exit 1; }
ctr_() { timeout 60 "$here/ctr.sh" "$S" "$@" </dev/null; }

addr=$("$here/registry.sh" start "$S")
"$here/build-test-image.py" "$S/layout" --tag multilayer --tag demo >/dev/null
"$here/push-test-image.sh" "$S/layout" multilayer "$addr" clip/test >/dev/null
"$here/push-test-image.sh" "$S/layout" demo "$addr" clip/test >/dev/null
"$here/containerd.sh" start "$S" >/dev/null   # picks up $S/registry.addr for certs.d

ctr_ images pull --hosts-dir "$S/certs.d" "$addr/clip/test:multilayer" >/dev/null
ctr_ images pull --plain-http "$addr/clip/test:demo" >/dev/null

out=$(ctr_ run --rm --snapshotter overlayfs "$addr/clip/test:multilayer" smoke1)
[ "$out" = "hello from clip, layer 3" ] || fail "multilayer printed: $out"
out=$(ctr_ run --rm "$addr/clip/test:demo" smoke2)
[ "$out" = "Hello from a clip container!" ] || fail "demo printed: $out"

# Whiteouts, opaque dir, file replaced by a directory, hardlink.
out=$(ctr_ run --rm "$addr/clip/test:multilayer" smoke3 /bin/sh -c \
  'echo $(ls /data); echo $(ls /data/opaque); cat /data/replaced/inner; stat -c %h /data/links/hard')
expected="keep l2dir links long opaque owned perm random.bin replaced secret
c
inner file from layer 3
2"
[ "$out" = "$expected" ] || fail "unexpected tree: $out"

ctr_ images rm --sync "$addr/clip/test:demo" >/dev/null
[ -z "$(ctr_ images ls -q | grep ':demo$' || true)" ] || fail "demo image still listed"
[ "$("$here/registry.sh" bytes "$S")" -gt 4000000 ] || fail "registry served too few bytes"
echo "smoke-infra: 1 passed, 0 failed"
