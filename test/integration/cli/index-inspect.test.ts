/**
 * `clip index`, `clip index --layer-file`, `clip index push` and `clip inspect` as a user runs them, against
 * the real docker-registry (distribution 2.8: no referrers API, so the tag schema is used).
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ArchiveSummary, readArchiveFile } from '../../../src/archive';
import { ANNOTATION_LAYER_DIGEST, ARCHIVE_ARTIFACT_TYPE, ARCHIVE_MEDIA_TYPE } from '../../../src/remote/published-archives';
import { ImageManifest, RegistryClient, referrersTag } from '../../../src/registry';
import { run } from '../../helpers/processes';
import { CLIP, CliFixture } from './cli-fixture';

const hex = (digest: string): string => digest.slice('sha256:'.length);

describe('clip index, index push and inspect', () => {
  const fx = new CliFixture();
  let out: string;
  let client: RegistryClient;

  before(async () => {
    await fx.start(['multilayer']);
    out = path.join(fx.dir, 'archives');
    client = new RegistryClient({ hosts: { plainHttp: true } });
  }, { timeout: 300_000 });
  after(async () => {
    await client?.close();
    await fx.stop();
  });

  const layers = () => fx.images['multilayer']!.layers;

  test('clip index IMAGE -o DIR writes one archive per layer, quietly when not on a terminal', async () => {
    const r = await fx.clip(['index', fx.ref('multilayer'), '--plain-http', '-o', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout + r.stderr, '', 'quiet');
    assert.deepEqual((await fsp.readdir(out)).sort(), layers().map((l) => `${hex(l.digest)}.clip`).sort());
    for (const l of layers()) {
      const archive = await readArchiveFile(path.join(out, `${hex(l.digest)}.clip`));
      assert.equal(archive.layerDigest, l.digest);
      assert.equal(archive.diffId, l.diff_id);
      assert.equal(archive.compressedSize, l.size);
    }
  });

  test('clip index --layer-file writes the same archive from the layer blob in a file', async () => {
    for (const l of layers()) {
      const file = path.join(fx.dir, 'single', `${hex(l.digest).slice(0, 12)}.clip`);
      const r = await fx.clip(['index', '--layer-file', fx.layerFile(l.digest), '-o', file]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(await fsp.readFile(file), await fsp.readFile(path.join(out, `${hex(l.digest)}.clip`)), 'byte for byte');
    }
  });

  test('clip inspect summarises an archive, and --json gives the same as JSON', async () => {
    // Layer 1 of multilayer: whiteouts, an opaque directory, a hard link, symlinks, a 3 MiB file.
    const layer = layers()[1]!;
    const file = path.join(out, `${hex(layer.digest)}.clip`);
    const text = await fx.clipOk(['inspect', file]);
    console.log(`# clip inspect of multilayer's second layer:\n${text.trimEnd().replace(/^/gm, '#   ')}`);
    assert.match(text, new RegExp(`^layer +${layer.digest}  application/vnd\\.oci\\.image\\.layer\\.v1\\.tar\\+gzip, gzip$`, 'm'));
    assert.match(text, new RegExp(`^diff id +${layer.diff_id}$`, 'm'));
    assert.match(text, new RegExp(`\\(${layer.size} bytes\\), .* uncompressed \\(${layer.uncompressed_size} bytes\\)$`, 'm'));
    assert.match(text, /^entries +\d+: \d+ files, \d+ directories, 2 symlinks, 1 hard link; 3\.0 MiB of file data$/m);
    assert.match(text, /^ +2 whiteouts, 1 opaque directory, 0 entries with xattrs$/m);
    assert.match(text, /^checkpoints +1 /m);
    assert.match(text, /^ratio +the archive is 0\.\d+% of the layer as stored/m);

    const json = JSON.parse(await fx.clipOk(['inspect', '--json', file])) as ArchiveSummary & { file: string };
    assert.equal(json.file, file);
    assert.equal(json.layerDigest, layer.digest);
    assert.equal(json.compressedSize, layer.size);
    assert.equal(json.uncompressedSize, layer.uncompressed_size);
    assert.equal(json.archiveSize, (await fsp.stat(file)).size);
    assert.equal(json.entries.byType.hardlink, 1);
    assert.equal(json.entries.whiteouts, 2);
    assert.equal(json.entries.opaqueMarkers, 1);
    assert.equal(json.ratio.compressed, json.archiveSize / layer.size);
  });

  test('clip index push publishes the archives next to the image (referrers tag schema on distribution 2.8)', async () => {
    const image = await client.resolve(fx.ref('multilayer'));
    const before = await fx.blobBytes();
    const stdout = await fx.clipOk(['index', 'push', fx.ref('multilayer'), '--plain-http', '--reuse', out]);
    assert.equal(await fx.blobBytes(), before, 'with --reuse no layer is downloaded');
    const tag = referrersTag(image.digest);
    const m = new RegExp(`^published 3 archives \\(.*\\) of ${fx.ref('multilayer').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}@${image.digest} as (sha256:[0-9a-f]{64}) \\(referrers tag ${tag}\\), unsigned\\n$`).exec(stdout);
    assert.ok(m, stdout);
    const artifactDigest = m[1]!;

    const index = await client.fetchManifest(`${fx.addr}/clip/test:${tag}`);
    assert.equal(index.parsed.kind, 'index');
    const referrers = index.parsed.kind === 'index' ? index.parsed.index.manifests : [];
    assert.deepEqual(referrers.map((r) => [r.digest, (r as { artifactType?: string }).artifactType]), [[artifactDigest, ARCHIVE_ARTIFACT_TYPE]]);

    const artifact = await client.fetchManifest(`${fx.addr}/clip/test@${artifactDigest}`);
    const manifest = (artifact.parsed.kind === 'manifest' ? artifact.parsed.manifest : undefined) as ImageManifest & { artifactType: string; subject: { digest: string } };
    assert.equal(manifest.artifactType, ARCHIVE_ARTIFACT_TYPE);
    assert.equal(manifest.subject.digest, image.digest);
    assert.deepEqual(manifest.layers.map((l) => [l.mediaType, l.annotations?.[ANNOTATION_LAYER_DIGEST]]), layers().map((l) => [ARCHIVE_MEDIA_TYPE, l.digest]));
    for (const l of manifest.layers) {
      const bytes = await client.fetchBlob(fx.ref('multilayer'), l);
      assert.deepEqual(bytes, await fsp.readFile(path.join(out, `${hex(l.annotations![ANNOTATION_LAYER_DIGEST]!)}.clip`)));
    }

    // Without --reuse the layers are streamed and indexed again: the same archives, the same artifact.
    const again = await fx.clipOk(['index', 'push', '--plain-http', fx.ref('multilayer')]);
    assert.ok(again.includes(` as ${artifactDigest} `), again);
    const after = await client.fetchManifest(`${fx.addr}/clip/test:${tag}`);
    assert.equal(after.digest, index.digest, 'the referrers index is unchanged');
  });

  test('on a terminal clip index draws a progress bar', async () => {
    const dir = path.join(fx.dir, 'tty');
    // script(1) gives the command a pseudo-terminal; its output is the terminal's.
    const r = await run('script', ['-qec', `${CLIP} index ${fx.ref('multilayer')} --plain-http -o ${dir}`, '/dev/null'], { timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /\x1b\[2K {2}1\/3 {2}sha256:[0-9a-f]{12} /);
    assert.match(r.stdout, /indexed/);
    assert.match(r.stdout, /wrote 3 archives to /);
  });

  test('bad input: one line on stderr and a non-zero exit', async () => {
    const notArchive = path.join(fx.dir, 'not-an-archive');
    await fsp.writeFile(notArchive, 'hello');
    // [arguments, exit status (see clip --help), stderr]
    const cases: Array<[string[], number, RegExp]> = [
      [['inspect', path.join(fx.dir, 'missing.clip')], 1, /^clip: inspect .*missing\.clip: ENOENT/],
      [['inspect', notArchive], 1, /^clip: inspect .*: clip archive: not a clip archive/],
      [['inspect'], 2, /^error: missing required argument 'archive'/],
      [['index', fx.ref('multilayer'), '--plain-http'], 2, /^clip: index: -o\/--output is required/],
      [['index', '-o', out], 2, /^clip: index: give an image \(clip index IMAGE -o DIR\) or a layer blob/],
      [['index', 'Bad//Ref', '-o', out], 1, /^clip: index Bad\/\/Ref: invalid reference/],
      [['index', `${fx.addr}/clip/test:nope`, '--plain-http', '-o', out], 4, /^clip: index .*:nope: GET .*manifests\/nope: HTTP 404/],
      [['index', fx.ref('multilayer'), '--plain-http', '--span-size', 'huge', '-o', out], 2, /^clip: --span-size: invalid size "huge"/],
      [['index', fx.ref('multilayer'), '--platform', 'linux', '-o', out], 2, /^clip: --platform: invalid platform "linux"/],
      [['index', '--layer-file', notArchive, '-o', path.join(fx.dir, 'x.clip')], 2, /^clip: index --layer-file .*not-an-archive: not a layer blob: /],
      [['index', 'push'], 2, /^error: missing required argument 'image'/],
      [['umount', path.join(fx.dir, 'nothing-here')], 1, /^clip: umount .*nothing-here: not a clip mount/],
      [['mount', fx.ref('multilayer')], 2, /^error: missing required argument 'dir'/],
    ];
    for (const [args, code, message] of cases) {
      const r = await fx.clip(args);
      assert.equal(r.code, code, `clip ${args.join(' ')}: exit status (${r.stderr})`);
      assert.match(r.stderr, message, `clip ${args.join(' ')}`);
      assert.equal(r.stderr.trimEnd().split('\n').length, 1, `one line: ${r.stderr}`);
    }
  });
});
