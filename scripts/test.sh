#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine, as root: installs system packages, installs and
# builds the project, then runs the unit, integration and end-to-end tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
npm ci --no-audit --no-fund
npm run build
node scripts/run-tests.js unit integration e2e
bash scripts/conformance.sh   # containerd 1.6 and 2.x snapshotter conformance suites against clip serve
