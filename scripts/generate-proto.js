#!/usr/bin/env node
// Generates TypeScript for every .proto under proto/ into src/generated/ with protoc + ts-proto.
// The output is produced by the build, ignored by git, and never edited by hand.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const protoDir = path.join(root, 'proto');
const outDir = path.join(root, 'src', 'generated');
const plugin = path.join(root, 'node_modules', '.bin', 'protoc-gen-ts_proto');
const wellKnown = '/usr/include'; // google/protobuf/*.proto from Debian's libprotobuf-dev

function protoFiles(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return protoFiles(p);
    return e.name.endsWith('.proto') ? [path.relative(protoDir, p)] : [];
  });
}

if (!fs.existsSync(path.join(wellKnown, 'google/protobuf/timestamp.proto'))) {
  console.error('generate-proto: google/protobuf/*.proto not found under /usr/include; run scripts/install-deps.sh');
  process.exit(1);
}

fs.rmSync(outDir, { recursive: true, force: true });
fs.mkdirSync(outDir, { recursive: true });
const options = [
  'outputServices=grpc-js',
  'esModuleInterop=true',
  'env=node',
  'useDate=false',
  'forceLong=number',
  'oneof=unions',
  'snakeToCamel=true',
  'useExactTypes=false',
].join(',');
execFileSync('protoc', [
  `--plugin=protoc-gen-ts_proto=${plugin}`,
  `--ts_proto_out=${outDir}`,
  `--ts_proto_opt=${options}`,
  `-I${protoDir}`,
  `-I${wellKnown}`,
  ...protoFiles(protoDir),
], { stdio: 'inherit', cwd: root });
console.log(`generate-proto: wrote TypeScript for ${protoFiles(protoDir).length} proto files to src/generated/`);
