#!/usr/bin/env bash
# containerd's snapshotter conformance suite (testsuite.SnapshotterSuite), run against `clip serve`
# through containerd's own proxy snapshotter client, for containerd 1.6 and 2.x.
#
#   scripts/conformance.sh [VERSION...]     VERSION: 1.6, 2.x (default: both)
#
# The suites are built offline from Debian's packages: a Go toolchain and the golang-*-dev source packages
# listed in test/conformance/containerd-VERSION/debian-packages (SUITE PACKAGE per line), built in GOPATH
# mode. Packages of other Debian suites (trixie, sid) are fetched with `apt-get download` through a
# private sources list and state directory and unpacked with `dpkg -x`: the system's packages and apt
# state are never touched. Everything is cached under $CLIP_CACHE_DIR (default: .cache/ in the repository):
#   conformance/debs/SUITE/           the downloaded .deb files
#   conformance/apt/SUITE/            private apt lists (only fetched when a .deb is missing)
#   conformance/containerd-VERSION/   root/ (unpacked packages), gopath/, gocache/, suite.test
# The test binary is rebuilt only when its sources or package list change.
#
# Needs root (the suite mounts snapshots) and a built clip (npm run build). Exits non-zero unless every
# test of the suite passed; a test the suite itself skips is accepted only if listed in
# test/conformance/containerd-VERSION/upstream-skips.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"
repo=$(cd "$here/.." && pwd)
cache=${CLIP_CACHE_DIR:-$repo/.cache}/conformance

[ "$(id -u)" -eq 0 ] || die "must run as root (the suite mounts snapshots)"
[ -x "$repo/bin/clip" ] && [ -f "$repo/dist/src/cli/main.js" ] || die "build clip first (npm run build)"

# apt_private SUITE ARGS...: apt-get with a sources list, lists, cache and (empty) dpkg status of its own.
apt_private() {
  local suite=$1; shift
  local dir=$cache/apt/$suite
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/preferences.d"
  [ -f "$dir/sources.list" ] ||
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $suite main" >"$dir/sources.list"
  : >"$dir/status"
  timeout 600 apt-get -q -o APT::Sandbox::User=root \
    -o Dir::Etc::sourcelist="$dir/sources.list" -o Dir::Etc::sourceparts=- \
    -o Dir::Etc::preferences=/dev/null -o Dir::Etc::preferencesparts="$dir/preferences.d" \
    -o Dir::State::Lists="$dir/lists" -o Dir::State::status="$dir/status" -o Dir::Cache="$dir/cache" \
    -o Acquire::Languages=none -o Acquire::Retries=3 -o Acquire::http::Timeout=30 "$@"
}

# packages_of LIST: the "SUITE PACKAGE" lines of a package list, without comments.
packages_of() { grep -v '^\s*\(#\|$\)' "$1"; }

# fetch LIST: download every package of LIST that is not cached yet (one apt update per suite at most).
fetch() {
  local list=$1 suite pkg
  local -A missing=()
  while read -r suite pkg; do
    compgen -G "$cache/debs/$suite/${pkg}_*.deb" >/dev/null || missing[$suite]+=" $pkg"
  done < <(packages_of "$list")
  for suite in "${!missing[@]}"; do
    echo "conformance.sh: downloading from Debian $suite:${missing[$suite]}"
    mkdir -p "$cache/debs/$suite"
    apt_private "$suite" update >/dev/null
    # shellcheck disable=SC2086  # the package names are words
    (cd "$cache/debs/$suite" && apt_private "$suite" download ${missing[$suite]} >/dev/null)
  done
}

# unpack LIST DIR: dpkg -x every package of LIST into DIR/root (again whenever LIST changed).
unpack() {
  local list=$1 dir=$2 suite pkg stamp
  stamp=$(sha256sum "$list" | cut -d' ' -f1)
  [ "$(cat "$dir/root.stamp" 2>/dev/null)" = "$stamp" ] && return 0
  rm -rf "$dir/root" "$dir/root.stamp"
  mkdir -p "$dir/root"
  while read -r suite pkg; do
    dpkg -x "$(compgen -G "$cache/debs/$suite/${pkg}_*.deb" | sort -V | tail -n1)" "$dir/root"
  done < <(packages_of "$list")
  echo "$stamp" >"$dir/root.stamp"
}

# build VERSION DIR: compile the suite's test binary DIR/suite.test in GOPATH mode, offline.
build() {
  local version=$1 dir=$2 goroot stamp
  goroot=$(dirname "$(dirname "$(compgen -G "$dir/root/usr/lib/go-*/bin/go" | head -n1)")")
  [ -x "$goroot/bin/go" ] || die "no Go toolchain unpacked in $dir/root"
  mkdir -p "$dir/gopath/src"
  ln -sfn "$repo/test/conformance" "$dir/gopath/src/clipconformance"
  stamp=$(cat "$dir/root.stamp" "$repo"/test/conformance/clipserve/*.go "$repo/test/conformance/containerd-$version"/*.go | sha256sum | cut -d' ' -f1)
  [ -x "$dir/suite.test" ] && [ "$(cat "$dir/suite.stamp" 2>/dev/null)" = "$stamp" ] && return 0
  echo "conformance.sh: building the containerd $version suite with $("$goroot/bin/go" version | cut -d' ' -f3)"
  local start=$SECONDS
  env GOROOT="$goroot" GOPATH="$dir/gopath:$dir/root/usr/share/gocode" GO111MODULE=off GOTOOLCHAIN=local \
    GOFLAGS= GOPROXY=off CGO_ENABLED=0 GOCACHE="$dir/gocache" \
    timeout 1800 nice "$goroot/bin/go" test -c -o "$dir/suite.test.tmp" "clipconformance/containerd-$version"
  mv "$dir/suite.test.tmp" "$dir/suite.test"
  echo "$stamp" >"$dir/suite.stamp"
  echo "conformance.sh: built in $((SECONDS - start)) s"
}

# run VERSION DIR: run the suite against bin/clip; every `clip serve` it starts lives under a fresh TMPDIR
# that is cleaned up (processes stopped, mounts unmounted) whatever happens.
run() {
  local version=$1 dir=$2 tmp log rc=0
  tmp=$(mktemp -d /tmp/clip-conformance-XXXXXX)
  log=$dir/last-run.log
  cleanup_run() {
    local pid
    for pid in $(pgrep -f -- "--address $tmp/" || true); do pid_matches "$pid" "$tmp/" && stop_pid "$pid" 10; done
    unmount_under "$tmp"
    rm -rf "$tmp"
  }
  trap cleanup_run EXIT
  echo "conformance.sh: running the containerd $version suite (log: $log)"
  (cd "$tmp" && TMPDIR=$tmp timeout -k 10 1200 "$dir/suite.test" -test.root -test.v -test.parallel 3 \
    -test.timeout 15m -clip.bin "$repo/bin/clip") >"$log" 2>&1 || rc=$?
  cleanup_run
  trap - EXIT
  check_results "$version" "$log" "$rc"
}

# check_results VERSION LOG RC: fail unless the run passed and skipped only the suite's known skips.
check_results() {
  local version=$1 log=$2 rc=$3 allowed=$repo/test/conformance/containerd-$version/upstream-skips
  local passed skipped name bad=0
  passed=$(grep -cE '^\s*--- PASS: TestClipSnapshotter/' "$log" || true)
  skipped=$(grep -oE '^\s*--- SKIP: TestClipSnapshotter/[^ ]+' "$log" | sed 's#.*/##' || true)
  for name in $skipped; do
    if ! grep -qx "$name" "$allowed" 2>/dev/null; then
      echo "conformance.sh: containerd $version: $name was skipped" >&2
      bad=1
    fi
  done
  if [ "$rc" -ne 0 ] || [ "$bad" -ne 0 ] || [ "$passed" -eq 0 ] || grep -qE '^\s*--- FAIL' "$log"; then
    grep -E '^\s*--- (FAIL|SKIP)|^\s+\S+\.go:[0-9]+: ' "$log" | grep -vE ': (un)?mount /' | head -60 >&2
    die "containerd $version conformance suite failed (exit $rc, $passed passed; full log: $log)"
  fi
  echo "conformance.sh: containerd $version: $passed passed, skipped by the suite itself: ${skipped:-none}"
}

versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(1.6 2.x)
for version in "${versions[@]}"; do
  list=$repo/test/conformance/containerd-$version/debian-packages
  [ -f "$list" ] || die "unknown version $version (no $list)"
  dir=$cache/containerd-$version
  mkdir -p "$dir"
  fetch "$list"
  unpack "$list" "$dir"
  build "$version" "$dir"
  run "$version" "$dir"
done
