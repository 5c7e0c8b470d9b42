#!/usr/bin/env node
// Runs the compiled test suites (dist/test/<suite>/**/*.test.js) with Node's test runner, one file at a
// time so suites that start real daemons never overlap.
//
//   run-tests.js [--containerd SERIES[,SERIES...]] SUITE...      SUITE: unit, integration, e2e
//
// The e2e suite runs once per containerd release given with --containerd (1.6, 1.7, 2.1; default 1.6, the
// system's package), with CLIP_TEST_CONTAINERD set for the test helpers; the release is fetched first
// (scripts/fetch-containerd.sh), so a failed download stops the run with a clear message.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const SERIES = ['1.6', '1.7', '2.1'];
const args = process.argv.slice(2);
let releases = ['1.6'];
if (args[0] === '--containerd') {
  releases = (args[1] ?? '').split(',').filter((r) => r !== '');
  args.splice(0, 2);
}
const usage = 'usage: run-tests.js [--containerd 1.6,1.7,2.1] SUITE... (unit, integration, e2e)';
if (args.length === 0 || releases.length === 0 || releases.some((r) => !SERIES.includes(r))) {
  console.error(usage);
  process.exit(2);
}

function testFiles(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return testFiles(p);
    return e.name.endsWith('.test.js') ? [p] : [];
  }).sort();
}

function filesOf(suite) {
  const found = testFiles(path.join(root, 'dist', 'test', suite));
  if (found.length === 0) {
    console.error(`run-tests: no compiled tests for suite "${suite}" (did you run npm run build?)`);
    process.exit(2);
  }
  return found;
}

function runFiles(files, env) {
  const result = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-timeout=600000', '--test-reporter=spec', ...files], {
    stdio: 'inherit',
    cwd: root,
    env: { ...process.env, ...env },
  });
  return result.status ?? 1;
}

// One run for the suites that do not start containerd, then the e2e suite once per release.
const runs = [];
const plain = args.filter((s) => s !== 'e2e').flatMap(filesOf);
if (plain.length > 0) runs.push({ name: args.filter((s) => s !== 'e2e').join(' '), files: plain, env: {} });
if (args.includes('e2e')) {
  const e2e = filesOf('e2e');
  for (const r of releases) runs.push({ name: `e2e on containerd ${r}`, files: e2e, env: { CLIP_TEST_CONTAINERD: r }, release: r });
}

const failed = [];
for (const run of runs) {
  console.log(`\nrun-tests: ${run.name}`);
  if (run.release) {
    const fetch = spawnSync(path.join(root, 'scripts', 'fetch-containerd.sh'), [run.release], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 1_200_000 });
    if (fetch.status !== 0) {
      console.error(`run-tests: no containerd ${run.release}; not running ${run.name}`);
      failed.push(run.name);
      continue;
    }
  }
  if (runFiles(run.files, run.env) !== 0) failed.push(run.name);
}
if (failed.length > 0) console.error(`\nrun-tests: failed: ${failed.join('; ')}`);
process.exit(failed.length > 0 ? 1 : 0);
