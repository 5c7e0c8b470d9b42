/**
 * The `clip` command's exit status and messages as a script sees them: bin/clip run as a child process
 * with bad arguments, bad configuration, a daemon that is not there and a registry that refuses.
 */
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { RunResult, run, tempDir } from '../../helpers/processes';
import { TestServer } from '../registry/test-servers';
import { CLIP } from './cli-fixture';

const clip = (args: string[]): Promise<RunResult> => run(CLIP, args, { timeoutMs: 60_000 });

/** Asserts the exit code and that stderr is one line matching `message` (`clip serve` logs its version only once started). */
function expectFailure(r: RunResult, code: number, message: RegExp): void {
  assert.equal(r.code, code, `exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line: ${JSON.stringify(r.stderr)}`);
  assert.match(`${lines[0]}\n`, message);
}

describe('clip exit codes', () => {
  let dir: string;
  let registry: TestServer;

  before(async () => {
    dir = await tempDir('exit-codes');
    registry = await TestServer.start(); // answers 404 to everything
  });
  after(async () => {
    await registry?.close();
    if (dir) await fsp.rm(dir, { recursive: true, force: true });
  });

  const config = async (name: string, text: string): Promise<string> => {
    const file = path.join(dir, name);
    await fsp.writeFile(file, text);
    return file;
  };

  test('--help documents the exit codes; --version prints the version and the commit', async () => {
    const help = await clip(['--help']);
    assert.equal(help.code, 0);
    for (const line of [/^ {2}2 {2}usage/m, /^ {2}3 {2}the daemon .* cannot be reached/m, /^ {2}4 {2}registry/m, /^ {2}5 {2}configuration/m]) {
      assert.match(help.stdout, line);
    }
    const version = await clip(['--version']);
    assert.equal(version.code, 0);
    const pkg = JSON.parse(await fsp.readFile(path.join(__dirname, '..', '..', '..', '..', 'package.json'), 'utf8')) as { version: string };
    assert.match(version.stdout, new RegExp(`^clip ${pkg.version.replace(/\./g, '\\.')} \\(commit ([0-9a-f]{12}(-dirty)?|unknown)\\)\\n$`));
  });

  test('usage errors exit 2', async () => {
    expectFailure(await clip(['no-such-command']), 2, /unknown command 'no-such-command'/);
    expectFailure(await clip(['serve', '--no-such-flag']), 2, /unknown option '--no-such-flag'/);
    expectFailure(await clip(['index']), 2, /^clip: index: give an image \(clip index IMAGE -o DIR\) or a layer blob \(clip index --layer-file BLOB -o FILE\)/);
    expectFailure(await clip(['index', '--layer-file', path.join(dir, 'x')]), 2, /-o\/--output is required: the archive file to write/);
    expectFailure(await clip(['index', 'example.com/a:b', '--span-size', '4 parsecs', '-o', dir]), 2, /--span-size: invalid size/);
    expectFailure(await clip(['index', 'example.com/a:b', '--platform', 'linux/', '-o', dir]), 2, /^clip: --platform: /);
  });

  test('a --layer-file that is not a gzip, zstd or tar layer is refused as such', async () => {
    const text = path.join(dir, 'notes.txt');
    await fsp.writeFile(text, 'just some text, not a layer\n'.repeat(40));
    const out = path.join(dir, 'notes.clip');
    expectFailure(await clip(['index', '--layer-file', text, '-o', out]), 2, /^clip: index --layer-file \S+notes\.txt: not a layer blob: .*expected a gzip, zstd or tar layer/);
    expectFailure(await clip(['index', '--layer-file', path.join(dir, 'missing'), '-o', out]), 2, /ENOENT/);
    await assert.rejects(fsp.stat(out), { code: 'ENOENT' }, 'no archive written');
  });

  test('configuration errors exit 5 with the line and column, and suggest the key meant', async () => {
    const sock = path.join(dir, 'clip.sock');
    const typo = await config('typo.toml', `root = "${dir}/root"\n\n[lazy]\nspan_sise = "1MiB"\n`);
    expectFailure(await clip(['serve', '--config', typo, '--address', sock]), 5, /^clip: config \S+typo\.toml:4: unknown setting \[lazy\] span_sise \(did you mean \[lazy\] span_size\?\)\n$/);
    const misplaced = await config('misplaced.toml', 'background_fetch = false\n');
    expectFailure(await clip(['serve', '--config', misplaced, '--address', sock]), 5, /:1: unknown setting background_fetch \(did you mean \[lazy\] background_fetch\?\)\n$/);
    const syntax = await config('syntax.toml', '[lazy]\nenabled = true\nspan_size = \n');
    expectFailure(await clip(['serve', '--config', syntax, '--address', sock]), 5, /^clip: config \S+syntax\.toml:3:\d+: invalid TOML: /);
    const type = await config('type.toml', '\n[registry]\nplain_http = "yes"\n');
    expectFailure(await clip(['serve', '--config', type, '--address', sock]), 5, /type\.toml:3: registry\.plain_http must be true or false/);
    expectFailure(await clip(['serve', '--config', path.join(dir, 'absent.toml'), '--address', sock]), 5, /absent\.toml: ENOENT/);
  });

  test('a root on /proc or /sys, or one that cannot be written, is refused at once (exit 5)', async () => {
    const sock = path.join(dir, 'clip.sock');
    for (const root of ['/proc/clip-test', '/sys/fs/clip-test', '/proc']) {
      expectFailure(await clip(['serve', '--root', root, '--address', sock]), 5, new RegExp(`^clip: root ${root} is on the kernel's /(proc|sys) filesystem`));
    }
    const file = path.join(dir, 'a-file');
    await fsp.writeFile(file, '');
    expectFailure(await clip(['serve', '--root', path.join(file, 'root'), '--address', sock]), 5, /^clip: root \S+ is not writable \(.*ENOTDIR/);
    await assert.rejects(fsp.stat(sock), { code: 'ENOENT' }, 'nothing served');
  });

  test('a daemon that is not there exits 3', async () => {
    const r = await clip(['pull', '--address', path.join(dir, 'no-containerd.sock'), '--plain-http', `${registry.host}/a/b:c`]);
    expectFailure(r, 3, /^clip: pull \S+: cannot reach containerd at \S+no-containerd\.sock: /);
  });

  test('a registry that refuses exits 4', async () => {
    const r = await clip(['index', '--plain-http', `${registry.host}/a/b:missing`, '-o', path.join(dir, 'out')]);
    expectFailure(r, 4, /^clip: index \S+: .*(404|not found)/i);
  });
});
