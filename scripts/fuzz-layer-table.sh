#!/usr/bin/env bash
# Fuzzes the C decoder of archive entries (src/archive/native/layer_table.c) on its own, built with
# AddressSanitizer and UndefinedBehaviorSanitizer (test/native/layer-table-fuzz.c says what it feeds it).
# The test suite fuzzes the same code through the addon, without sanitizers
# (test/unit/fuzz/hostile-input.test.ts).
#
#   bash scripts/fuzz-layer-table.sh [ITERATIONS [SEED]]      (default 200000 bodies)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
gcc -std=gnu11 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -Wall -Wextra \
  -I "$root/src/archive/native" -o "$out/layer-table-fuzz" \
  "$root/test/native/layer-table-fuzz.c" "$root/src/archive/native/layer_table.c"
"$out/layer-table-fuzz" "${1:-200000}" "${2:-1}"
