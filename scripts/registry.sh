#!/usr/bin/env bash
# Throw-away OCI registry (Debian's docker-registry, distribution 2.8) for tests.
#
#   scripts/registry.sh start STATE_DIR [PORT] [--htpasswd FILE] [--storage DIR]   # prints 127.0.0.1:PORT;
#                                         # with PORT (a restart on the address it had), the log is kept
#   scripts/registry.sh stop  STATE_DIR   # no-op when not running
#
#   --htpasswd FILE   require HTTP Basic authentication with the users of FILE (bcrypt, `htpasswd -B`)
#   --storage DIR     serve the blobs and manifests stored in DIR (default: STATE_DIR/registry-data), e.g.
#                     another registry's, to put authentication in front of images pushed there
#   --tls CERT KEY    serve https with this certificate (PEM) and key; CERT must be trusted by clients
#                     (e.g. a self-signed certificate for IP 127.0.0.1 given to them as their CA)
#   --read-only       refuse every upload and manifest PUT (405), as a read-only registry or mirror does
#
# Files in STATE_DIR: registry.yml (config), registry-data/ (storage), registry.log,
# registry.pid, registry.addr (127.0.0.1:PORT, a free port picked at start).
#
#   scripts/registry.sh bytes STATE_DIR [DIGEST...]   # sum of body bytes sent for GET .../blobs/...
#                                                     # (of those blobs only, when digests are given)
#
# registry.log holds two lines per request (both checked with 200, 206 and HEAD requests):
#  * the access log (Apache combined format, written to stdout), e.g.
#      127.0.0.1 - - [25/Nov/2026:16:26:45 +0000] "GET /v2/clip/test/blobs/sha256:1521.. HTTP/1.1" 206 1000 "" "curl/7.88.1"
#    the field after the status is the number of response body bytes actually written
#    (206 range answers: the range's length; HEAD: 0). The Range header itself is not logged.
#  * the app log (logrus text, stderr): level=info msg="response completed" ...
#    http.request.method=GET http.request.uri="/v2/..." http.response.status=206
#    http.response.written=1000 http.response.duration=...
# Range requests on blobs are supported (Accept-Ranges: bytes).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$here/lib.sh"

cmd=${1:-}; state=${2:-}; fixed_port=''
[ -n "$cmd" ] && [ -n "$state" ] || die "usage: $0 start|stop|bytes STATE_DIR"
mkdir -p "$state"
state=$(realpath "$state")
cfg=$state/registry.yml pidf=$state/registry.pid addrf=$state/registry.addr log=$state/registry.log
htpasswd='' storage=$state/registry-data tls_cert='' tls_key= read_only=false
if [ "$cmd" = start ]; then
  shift 2
  while [ $# -gt 0 ]; do
    case "$1" in
      --htpasswd) htpasswd=$(realpath "${2:?--htpasswd FILE}"); shift 2 ;;
      --storage) storage=$(realpath "${2:?--storage DIR}"); shift 2 ;;
      --tls) tls_cert=$(realpath "${2:?--tls CERT KEY}"); tls_key=$(realpath "${3:?--tls CERT KEY}"); shift 3 ;;
      --read-only) read_only=true; shift ;;
      [0-9]*) fixed_port=$1; shift ;;
      *) die "unknown option $1" ;;
    esac
  done
fi

running() { [ -f "$pidf" ] && pid_matches "$(cat "$pidf")" "$cfg"; }

# http_code URL [CAFILE]: print the HTTP status of GET URL (000 when unreachable); 2 s timeout.
http_code() {
  python3 - "$1" "${2:-}" <<'EOF'
import ssl, sys, urllib.request, urllib.error
try:
    ctx = ssl.create_default_context(cafile=sys.argv[2]) if sys.argv[2] else None
    print(urllib.request.urlopen(sys.argv[1], timeout=2, context=ctx).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
EOF
}

start() {
  if running; then cat "$addrf"; return 0; fi
  command -v docker-registry >/dev/null || die "docker-registry not installed (scripts/install-deps.sh)"
  mkdir -p "$storage"
  # GET /v2/ answers 401 when authentication is on: that still means the registry is up.
  local ready=200 auth=''
  if [ -n "$htpasswd" ]; then
    ready=401
    auth="auth:
  htpasswd:
    realm: clip-test
    path: $htpasswd"
  fi
  local scheme=http tls=''
  if [ -n "$tls_cert" ]; then
    scheme=https
    tls="  tls:
    certificate: $tls_cert
    key: $tls_key"
  fi
  local attempt port pid i
  # The port is free when picked but could be taken before the registry binds it: retry.
  for attempt in 1 2 3; do
    port=${fixed_port:-$(free_port)}
    cat >"$cfg" <<EOF
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
  fields:
    service: registry
storage:
  filesystem:
    rootdirectory: $storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: $read_only
http:
  addr: 127.0.0.1:$port
  secret: clip-throwaway-registry
  headers:
    X-Content-Type-Options: [nosniff]
$tls
$auth
EOF
    [ -n "$fixed_port" ] || : >"$log"
    # setsid + all fds redirected: the server must not hold the caller's pipes open.
    setsid docker-registry serve "$cfg" >>"$log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$pidf"
    echo "127.0.0.1:$port" >"$addrf"
    for ((i = 0; i < 200; i++)); do            # 20 s
      if [ "$(http_code "$scheme://127.0.0.1:$port/v2/" "$tls_cert")" = "$ready" ]; then
        echo "127.0.0.1:$port"; return 0
      fi
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      stop_pid "$pid" 5 || true
      rm -f "$pidf" "$addrf"
      die "registry did not answer GET /v2/ within 20 s; log tail:
$(tail -n 20 "$log")"
    fi
    rm -f "$pidf" "$addrf"
    if [ -z "$fixed_port" ] && grep -q 'address already in use' "$log"; then
      echo "registry.sh: port $port taken, retrying ($attempt/3)" >&2; continue
    fi
    die "registry exited at start; log tail:
$(tail -n 20 "$log")"
  done
  die "could not find a free port for the registry"
}

stop() {
  if running; then stop_pid "$(cat "$pidf")" 10; fi
  rm -f "$pidf" "$addrf"
}

# bytes: total body bytes of GET blob responses in the access log (0 if none).
bytes() {
  [ -f "$log" ] || { echo 0; return 0; }
  awk -v only="$*" 'BEGIN { k = split(only, d, " "); for (i = 1; i <= k; i++) want["/blobs/" d[i]] = 1 }
       $1 ~ /^[0-9.]+$/ && $6 == "\"GET" && $7 ~ /\/blobs\/sha256:/ && $10 ~ /^[0-9]+$/ {
         if (k > 0) { blob = $7; sub(/.*\/blobs\//, "/blobs/", blob); sub(/[?].*/, "", blob); if (!(blob in want)) next }
         n += $10
       }
       END { printf "%.0f\n", n }' "$log"
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  bytes) shift 2; bytes "$@" ;;
  *) die "usage: $0 start|stop|bytes STATE_DIR" ;;
esac
