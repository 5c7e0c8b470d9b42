#!/usr/bin/env node
/**
 * Builds clip's native addons with node-gyp (npm puts its bundled node-gyp on PATH for `npm run`) and
 * copies each into dist/, next to the compiled module that loads it:
 *   src/indexer/native/clip_indexer.node  gzip checkpoints (zlib) and SHA-256 (node's OpenSSL)
 *   src/archive/native/clip_archive.node  archive entries checked and decoded into the FUSE server's table
 *   src/fusefs/native/clip_fuse.node   the FUSE layer server (libfuse3)
 *   src/fusefs/native/clip_handoff.node   fd passing, sd_notify and flock for live restarts
 *   src/fusefs/native/clip-fd-holder   the program that keeps FUSE connections across clip restarts
 */
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.join(__dirname, '..');
const addons = [
  ['src/indexer/native', ['clip_indexer.node']],
  ['src/archive/native', ['clip_archive.node']],
  ['src/fusefs/native', ['clip_fuse.node', 'clip_handoff.node', 'clip-fd-holder']],
];

for (const [dir, files] of addons) {
  execFileSync('node-gyp', ['rebuild', `--directory=${dir}`, '--loglevel=warn'], { cwd: root, stdio: 'inherit' });
  const out = path.join(root, 'dist', dir);
  fs.mkdirSync(out, { recursive: true });
  for (const file of files) {
    // copy to a new inode: a running clip-fd-holder keeps the old one (no ETXTBSY)
    const dest = path.join(out, file);
    fs.rmSync(dest, { force: true });
    fs.copyFileSync(path.join(root, dir, 'build', 'Release', file), dest);
  }
}
