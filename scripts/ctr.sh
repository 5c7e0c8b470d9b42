#!/usr/bin/env bash
# ctr against the throw-away containerd of scripts/containerd.sh.
#
#   scripts/ctr.sh STATE_DIR [global ctr options] COMMAND ARGS...
#   = ctr --address STATE_DIR/containerd.sock ...
#
# Keeping `ctr run` out of the system's /run/containerd: by default ctr puts its IO FIFOs in
# /run/containerd/fifo and the shim's runc keeps container state in /run/containerd/runc/NS.
# This wrapper therefore adds, unless given already:
#   run             --fifo-dir STATE_DIR/fifo --runc-root STATE_DIR/runc
#   task start|exec --fifo-dir STATE_DIR/fifo
# (the runc root chosen at `run` is stored in the container, later task commands reuse it).
# Shim sockets still go to /run/containerd/s/ (hard-coded in containerd 1.6 to 2.1);
# `containerd.sh stop` cleans those up.
#
# Running a container safely (never blocks forever, no stdin, no leftovers on success):
#   timeout 60 scripts/ctr.sh "$S" run --rm --snapshotter overlayfs \
#       127.0.0.1:PORT/clip/test:multilayer my-ctr </dev/null
# Pull from the throw-away registry (plain http), either way:
#   timeout 60 scripts/ctr.sh "$S" images pull --plain-http 127.0.0.1:PORT/clip/test:multilayer
#   timeout 60 scripts/ctr.sh "$S" images pull --hosts-dir "$S/certs.d" 127.0.0.1:PORT/clip/test:multilayer
# If a `run` is interrupted, clean with `ctr.sh S task kill -s KILL ID; ctr.sh S task rm ID;
# ctr.sh S c rm ID` or just `containerd.sh stop S`.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 STATE_DIR ARGS..." >&2; exit 2; }
state=$(realpath "$1"); shift
args=("$@")

# Find the subcommand: skip ctr's global options (those taking a value skip two words).
i=0
while [ $i -lt ${#args[@]} ]; do
  case "${args[$i]}" in
    -a | --address | -n | --namespace | --timeout | --connect-timeout) i=$((i + 2)) ;;
    -*) i=$((i + 1)) ;;
    *) break ;;
  esac
done

has() { local a; for a in "${args[@]}"; do [[ "$a" == "$1" || "$a" == "$1="* ]] && return 0; done; return 1; }

extra=()
sub=${args[$i]:-} next=${args[$((i + 1))]:-}
if [ "$sub" = run ]; then
  has --fifo-dir || extra+=(--fifo-dir "$state/fifo")
  has --runc-root || extra+=(--runc-root "$state/runc")
  nsub=1
elif [[ "$sub" =~ ^(t|task|tasks)$ && "$next" =~ ^(start|exec)$ ]]; then
  has --fifo-dir || extra+=(--fifo-dir "$state/fifo")
  nsub=2
fi
if [ ${#extra[@]} -gt 0 ]; then
  mkdir -p "$state/fifo" "$state/runc"
  args=("${args[@]:0:$((i + nsub))}" "${extra[@]}" "${args[@]:$((i + nsub))}")
fi
# The ctr of the containerd that containerd.sh started (its bin dir is in STATE_DIR/containerd-bin).
ctr=ctr
[ ! -s "$state/containerd-bin" ] || ctr=$(cat "$state/containerd-bin")/ctr
exec "$ctr" --address "$state/containerd.sock" "${args[@]}"
