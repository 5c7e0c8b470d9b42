#!/usr/bin/env node
// Records the version and the git commit clip is built from in dist/build-info.json (read by
// src/build-info.ts for `clip --version` and the daemon's start-up line). Outside a git checkout, or
// without git, the commit is "unknown"; "-dirty" marks a build with uncommitted changes.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

function git(args) {
  return execFileSync('git', ['-C', root, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 }).trim();
}

let commit = 'unknown';
try {
  commit = git(['rev-parse', '--short=12', 'HEAD']);
  if (git(['status', '--porcelain', '--untracked-files=no']) !== '') commit += '-dirty';
} catch {
  // not a git checkout (a release tarball) or no git: keep "unknown"
}
const { version } = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
fs.mkdirSync(path.join(root, 'dist'), { recursive: true });
fs.writeFileSync(path.join(root, 'dist', 'build-info.json'), `${JSON.stringify({ version, commit })}\n`);
