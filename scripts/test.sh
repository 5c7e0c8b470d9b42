#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine, as root: installs system packages, installs and
# builds the project, then runs the unit and integration tests, and the end-to-end tests once per
# containerd release: 1.6.20 (the system's package), 1.7.24 and 2.1.9 (fetched from Debian trixie and sid
# into .cache/containerd/ by scripts/fetch-containerd.sh; the system's packages are not touched).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
npm ci --no-audit --no-fund
npm run build
node scripts/run-tests.js --containerd 1.6,1.7,2.1 unit integration e2e
bash scripts/conformance.sh   # containerd 1.6 and 2.x snapshotter conformance suites against clip serve
