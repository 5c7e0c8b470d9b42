#!/usr/bin/env node
// Runs the compiled test suites (dist/test/<suite>/**/*.test.js) with Node's test runner, one file at a
// time so suites that start real daemons never overlap. Usage: run-tests.js SUITE... (unit, integration, e2e)
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const suites = process.argv.slice(2);
if (suites.length === 0) {
  console.error('usage: run-tests.js SUITE... (unit, integration, e2e)');
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

const files = suites.flatMap((s) => {
  const found = testFiles(path.join(root, 'dist', 'test', s));
  if (found.length === 0) {
    console.error(`run-tests: no compiled tests for suite "${s}" (did you run npm run build?)`);
    process.exit(2);
  }
  return found;
});

const result = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-timeout=600000', '--test-reporter=spec', ...files], {
  stdio: 'inherit',
  cwd: root,
});
process.exit(result.status ?? 1);
