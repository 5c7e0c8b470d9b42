#!/usr/bin/env bash
# Makes a given containerd release available for the tests and prints the directory holding its
# `containerd`, `ctr` and `containerd-shim-runc-v2`.
#
#   scripts/fetch-containerd.sh VERSION        VERSION: 1.6.20 | 1.7.24 | 2.1.9 (or 1.6 | 1.7 | 2.1)
#
# 1.6.20 is the system's package (scripts/install-deps.sh): the script checks its version and prints
# /usr/bin. 1.7.24 (Debian trixie) and 2.1.9 (Debian sid) are fetched from Debian's archive with apt-get,
# using a private sources list, package lists and cache under the cache dir, then unpacked with
# `dpkg -x` into CACHE/<version>/. Nothing is installed or upgraded: the system's dpkg database, apt lists
# and /usr are never written. apt checks the package against the signed archive index (Debian's keyring).
#
# The cache dir is CLIP_CONTAINERD_CACHE, default <repo>/.cache/containerd (git-ignored). Idempotent: a
# version already unpacked is not fetched again. Concurrent runs are serialised by a lock file.
#
# runc: the shims use the first `runc` on PATH. Only bookworm's runc 1.1.5 (the system's) runs on this
# Debian 12 host; trixie's runc 1.1.15 and sid's 1.3.6 need glibc 2.38. So no runc is fetched.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

[ $# -eq 1 ] || die "usage: $0 VERSION (1.6.20, 1.7.24 or 2.1.9)"
case "$1" in
  1.6 | 1.6.20) version=1.6.20 suite="" ;;
  1.7 | 1.7.24) version=1.7.24 suite=trixie ;;
  2.1 | 2.1.9) version=2.1.9 suite=sid ;;
  *) die "unknown containerd version '$1' (1.6.20, 1.7.24 or 2.1.9)" ;;
esac

# binaries_ok DIR: DIR holds the three binaries and `containerd --version` names $version.
binaries_ok() {
  local dir=$1 b
  for b in containerd ctr containerd-shim-runc-v2; do [ -x "$dir/$b" ] || return 1; done
  timeout 20 "$dir/containerd" --version 2>/dev/null | grep -q " v\?$version[~+ ]"
}

if [ -z "$suite" ]; then
  binaries_ok /usr/bin || die "the system's containerd is not $version (run scripts/install-deps.sh)"
  echo /usr/bin
  exit 0
fi

cache=${CLIP_CONTAINERD_CACHE:-$here/../.cache/containerd}
mkdir -p "$cache"
cache=$(realpath "$cache")
dest=$cache/$version
bin=$dest/usr/bin
if binaries_ok "$bin"; then echo "$bin"; exit 0; fi

exec 9>"$cache/.lock"
timeout 900 flock 9 || die "could not lock $cache/.lock within 900 s"
if binaries_ok "$bin"; then echo "$bin"; exit 0; fi

apt_dir=$cache/apt
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/download"
cat >"$apt_dir/sources.list" <<EOF
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main
EOF
# Every path apt writes is private; sandbox user root so apt can write into the private dirs.
apt_opts=(
  -o "Dir::Etc::sourcelist=$apt_dir/sources.list" -o Dir::Etc::sourceparts=-
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
  -o APT::Sandbox::User=root -o Acquire::http::Timeout=30 -o Acquire::Retries=3
  -o Acquire::Languages=none -o APT::Get::List-Cleanup=false
)

# The full Debian version of upstream $version in $suite, from the private lists (empty if absent).
debian_version() {
  apt-cache "${apt_opts[@]}" madison containerd 2>/dev/null |
    awk -F' [|] ' -v v="$version" -v s="$suite" '$2 ~ "^" v "[~+]" && $3 ~ " " s "/" { print $2; exit }'
}

update_lists() {
  echo "fetch-containerd: updating private package lists (trixie, sid) in $apt_dir" >&2
  timeout 600 apt-get -q "${apt_opts[@]}" update >&2 || die "apt-get update failed"
}

# download: apt-get download of $version into $apt_dir/download (checked against the signed index).
download() {
  local deb_version
  deb_version=$(debian_version)
  [ -n "$deb_version" ] || return 1
  echo "fetch-containerd: downloading containerd=$deb_version ($suite)" >&2
  rm -f "$apt_dir/download/"*.deb
  (cd "$apt_dir/download" && timeout 600 apt-get -q "${apt_opts[@]}" download "containerd=$deb_version" >&2)
}

# Lists from an earlier run may be stale (the archive drops superseded packages): update once and retry.
if ! download; then
  update_lists
  download || die "Debian $suite has no downloadable containerd $version (apt-cache madison containerd: $(apt-cache "${apt_opts[@]}" madison containerd 2>/dev/null | tr '\n' ';'))"
fi
deb=$(ls "$apt_dir/download/"containerd_*.deb)

rm -rf "$cache/.unpack-$version-"*          # left by an interrupted run (we hold the lock)
tmp=$(mktemp -d "$cache/.unpack-$version-XXXXXX")
dpkg -x "$deb" "$tmp"
rm -rf "$dest"
mv "$tmp" "$dest"
rm -f "$deb"
binaries_ok "$bin" || die "unpacked $deb into $dest, but $bin/containerd is not $version"
echo "fetch-containerd: containerd $version in $bin" >&2
echo "$bin"
