# shellcheck shell=bash
# Helpers shared by registry.sh and containerd.sh. Source it; do not run it.
# Everything here is bounded in time: nothing waits forever.

# die MSG...: print to stderr and exit 1.
die() { echo "$(basename "$0"): $*" >&2; exit 1; }

# free_port: print a TCP port on 127.0.0.1 that was free a moment ago
# (the kernel picks it; there is a small race until the server binds it).
free_port() {
  python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# pid_matches PID NEEDLE: true if PID is alive and its command line contains NEEDLE.
# Guards against killing a recycled PID that now belongs to something else.
pid_matches() {
  local pid=$1 needle=$2 cmd
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [ -r "/proc/$pid/cmdline" ] || return 1
  cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline") || return 1
  [[ "$cmd" == *"$needle"* ]]
}

# alive PID: true while PID exists and is not a zombie.
alive() {
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# stop_pid PID [GRACE_SECONDS]: SIGTERM, wait up to GRACE (default 10 s), then SIGKILL
# and wait up to 5 s more. Returns 0 once the process is gone.
stop_pid() {
  local pid=$1 grace=${2:-10} i
  alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do alive "$pid" || return 0; sleep 0.1; done
  echo "$(basename "$0"): pid $pid ignored SIGTERM for ${grace}s, sending SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do alive "$pid" || return 0; sleep 0.1; done
  echo "$(basename "$0"): pid $pid still present after SIGKILL (D state?)" >&2
  return 1
}

# descendants PID: print all descendant PIDs of PID (children first-level first).
descendants() {
  local parent=$1 child
  for child in $(ps -o pid= --ppid "$parent" 2>/dev/null); do
    echo "$child"
    descendants "$child"
  done
}

# unmount_under DIR: lazily unmount every mount point at or below DIR, deepest first.
# Reads /proc/self/mountinfo (field 5 is the mount point, octal-escaped like \040).
unmount_under() {
  local dir mp
  dir=$(realpath -m "$1")
  # Repeat: a lazy unmount can reveal a mount that was stacked underneath.
  for _ in 1 2 3 4 5; do
    local found=0
    while IFS= read -r mp; do
      [ -n "$mp" ] || continue
      found=1
      umount -l "$mp" 2>/dev/null || echo "$(basename "$0"): umount -l $mp failed" >&2
    done < <(awk '{print $5}' /proc/self/mountinfo |
               while IFS= read -r m; do printf '%b\n' "$m"; done |
               awk -v d="$dir" '$0 == d || index($0, d "/") == 1' |
               awk '{print length($0) "\t" $0}' | sort -rn | cut -f2-)
    [ "$found" = 1 ] || return 0
  done
}
