#!/usr/bin/env bash
# Try clip on a fresh Debian 12 machine, as root:
#
#   bash scripts/demo.sh            # install, build, run one container through clip, clean up
#   bash scripts/demo.sh --keep     # ... and leave the stack running; prints how to use and stop it
#   bash scripts/demo.sh --no-setup # skip install-deps.sh / npm ci / npm run build (already done)
#   bash scripts/demo.sh --stop DIR # stop a stack left running by --keep and remove DIR
#
# Steps: scripts/install-deps.sh, npm ci, npm run build; then, in a fresh temp state dir: a local
# registry (Debian's docker-registry) holding the `demo` test image, the clip daemon
# (bin/clip serve, root and socket in the state dir), a private containerd 1.6 with clip as its
# proxy snapshotter, `ctr images pull --snapshotter clip`, and
# `ctr run --rm --snapshotter clip IMAGE demo`, which prints "Hello from a clip container!".
# Nothing touches the system's containerd. Every daemon is stopped by PID on exit (also on
# failure or Ctrl-C) and the state dir is removed, unless --keep is given.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
. "$here/lib.sh"

say() { echo "demo: $*"; }
usage() { die "usage: $0 [--keep] [--no-setup] | --stop STATE_DIR"; }

# stop_stack DIR: containerd (also kills leftover shims and unmounts everything under DIR), clip,
# a second unmount pass, the registry; then removes DIR unless something is still mounted in it.
stop_stack() {
  local S=$1 pid
  "$here/containerd.sh" stop "$S" || true
  if [ -f "$S/clip.pid" ]; then
    pid=$(cat "$S/clip.pid")
    if pid_matches "$pid" "$S/clip.sock"; then stop_pid "$pid" 10 || true; fi
    rm -f "$S/clip.pid"
  fi
  "$here/containerd.sh" stop "$S" || true   # no-op for containerd now; unmounts what clip may have left
  "$here/registry.sh" stop "$S" || true
  if grep -qF -e " $S/" -e " $S " /proc/self/mountinfo; then
    echo "demo: mounts left under $S, not removing it:" >&2
    grep -F -e " $S/" -e " $S " /proc/self/mountinfo | awk '{print "  " $5}' >&2
    return 1
  fi
  rm -rf "$S"
}

keep=0 setup=1
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=1; shift ;;
    --no-setup) setup=0; shift ;;
    --stop)
      S=${2:-}; [ -n "$S" ] || usage
      S=$(realpath "$S")
      [ -f "$S/clip-demo-state" ] || die "$S is not a state dir made by demo.sh"
      stop_stack "$S"
      say "stopped and removed $S"
      exit 0 ;;
    -h | --help) sed -n '2,17p' "$0"; exit 0 ;;
    *) usage ;;
  esac
done

[ "$(id -u)" -eq 0 ] || die "must run as root (containerd, mounts, apt-get)"

S=$(mktemp -d /tmp/clip-demo.XXXXXX)
touch "$S/clip-demo-state"
ok=0
on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$keep" = 1 ]; then
    [ "$ok" = 1 ] || echo "demo: failed, but --keep leaves everything in $S (logs: *.log there)" >&2
    cat <<EOF
demo: the stack is still running, state in $S
  run another container:  $here/ctr.sh $S run --rm --snapshotter clip ${ref:-REF} demo2
  clip's snapshots:       $here/ctr.sh $S snapshots --snapshotter clip ls
  logs:                   $S/clip.log $S/containerd.log $S/registry.log
  stop it all:            bash $here/demo.sh --stop $S
EOF
    exit "$rc"
  fi
  if [ "$ok" != 1 ]; then
    for f in setup.log clip.log containerd.log; do
      if [ -s "$S/$f" ]; then echo "--- $f (tail)" >&2; tail -n 15 "$S/$f" >&2; fi
    done
  fi
  say "stopping everything"
  stop_stack "$S" || rc=1
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# step CMD...: run a setup command with its output in setup.log (shown if it fails).
step() {
  if ! "$@" >>"$S/setup.log" 2>&1; then
    echo "demo: '$*' failed; output:" >&2
    tail -n 30 "$S/setup.log" >&2
    exit 1
  fi
}

cd "$repo"
if [ "$setup" = 1 ]; then
  say "installing system packages (scripts/install-deps.sh)"
  step bash scripts/install-deps.sh
  say "installing node modules (npm ci)"
  step npm ci --no-audit --no-fund
  say "building (npm run build)"
  step npm run build
fi
node -e 'new (require("better-sqlite3"))(":memory:").close()' 2>/dev/null ||
  die "the native module better-sqlite3 does not load; run: npm rebuild better-sqlite3"
[ -f dist/src/cli/main.js ] || die "clip is not built; run without --no-setup (or: npm run build)"

say "state dir $S"
say "starting a local registry"
addr=$("$here/registry.sh" start "$S")
ref=$addr/clip/test:demo
say "building the demo image and pushing it to $ref"
"$here/build-test-image.py" "$S/layout" --tag demo >/dev/null
"$here/push-test-image.sh" "$S/layout" demo "$addr" clip/test >/dev/null

say "starting the clip daemon (log: $S/clip.log)"
setsid "$repo/bin/clip" serve --root "$S/clip" --address "$S/clip.sock" --log-level debug \
  >"$S/clip.log" 2>&1 </dev/null &
echo $! >"$S/clip.pid"
for ((i = 0; i < 200; i++)); do                # 20 s
  if [ -S "$S/clip.sock" ] && grep -q serving "$S/clip.log"; then break; fi
  alive "$(cat "$S/clip.pid")" || die "clip exited at start"
  sleep 0.1
done
[ -S "$S/clip.sock" ] || die "clip did not create its socket within 20 s"

say "starting containerd with the clip proxy snapshotter (log: $S/containerd.log)"
"$here/containerd.sh" start "$S" --clip-address "$S/clip.sock" >/dev/null

ctr_() { timeout 60 "$here/ctr.sh" "$S" "$@" </dev/null; }
t0=$(date +%s.%N)
say "ctr images pull --snapshotter clip $ref"
ctr_ images pull --snapshotter clip --hosts-dir "$S/certs.d" "$ref" >"$S/pull.log" 2>&1 ||
  { cat "$S/pull.log" >&2; die "pull failed"; }
say "ctr run --rm --snapshotter clip $ref demo"
out=$(ctr_ run --rm --snapshotter clip "$ref" demo) || die "ctr run failed"
t1=$(date +%s.%N)
echo "$out"
[ "$out" = "Hello from a clip container!" ] || die "unexpected output: $out"
say "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "pull + run took %.1f s", b - a }')"
say "clip's snapshots: $(ctr_ snapshots --snapshotter clip ls | tail -n +2 | wc -l) committed layer(s)"
ok=1
