import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { InvalidArgumentError } from '../../../src/errors';
import { DockerCredentials, RegistryLogger, registryKey } from '../../../src/registry';
import { tempDir } from '../../helpers/processes';

const b64 = (s: string) => Buffer.from(s).toString('base64');

function recordingLogger(): RegistryLogger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, debug: (m) => lines.push(m), info: (m) => lines.push(m), warn: (m) => lines.push(m) };
}

describe('docker config.json credentials', () => {
  it('normalises registry keys', () => {
    assert.equal(registryKey('https://index.docker.io/v1/'), 'docker.io');
    assert.equal(registryKey('registry-1.docker.io'), 'docker.io');
    assert.equal(registryKey('http://LOCALHOST:5000/v2/'), 'localhost:5000');
    assert.equal(registryKey('ghcr.io'), 'ghcr.io');
  });

  it('decodes auth, username/password, identity and registry tokens', async () => {
    const creds = DockerCredentials.fromObject({
      auths: {
        'https://index.docker.io/v1/': { auth: b64('hubuser:hub:pass') },
        'ghcr.io': { username: 'gh', password: 'ghpass' },
        'https://id.example.com': { username: 'u', identitytoken: 'refresh-me' },
        'tok.example.com:5000': { registrytoken: 'bearer-me' },
        'placeholder.example.com': {},
      },
    });
    assert.deepEqual(await creds.get('registry-1.docker.io'), { username: 'hubuser', password: 'hub:pass', identityToken: undefined, registryToken: undefined });
    assert.deepEqual(await creds.get('docker.io'), await creds.get('registry-1.docker.io'));
    assert.equal((await creds.get('ghcr.io'))?.password, 'ghpass');
    assert.equal((await creds.get('id.example.com'))?.identityToken, 'refresh-me');
    assert.equal((await creds.get('tok.example.com:5000'))?.registryToken, 'bearer-me');
    assert.equal(await creds.get('tok.example.com'), undefined, 'the port is part of the key');
    assert.equal(await creds.get('placeholder.example.com'), undefined);
    assert.equal(await creds.get('quay.io'), undefined);
  });

  it('prefers the key that is exactly the host', async () => {
    const creds = DockerCredentials.fromObject({
      auths: { 'https://reg.example.com/v2/': { auth: b64('a:1') }, 'reg.example.com': { auth: b64('b:2') } },
    });
    assert.equal((await creds.get('reg.example.com'))?.username, 'b');
  });

  for (const [config, why] of [
    [[], /expected a JSON object/],
    [{ auths: [] }, /auths must be an object/],
    [{ auths: { x: { auth: 'not base64!' } } }, /auths\["x"\]\.auth is not base64/],
    [{ auths: { x: { auth: b64('nocolon') } } }, /auths\["x"\]\.auth/],
    [{ auths: { x: { password: 5 } } }, /auths\["x"\]\.password must be a string/],
    [{ credHelpers: { x: 1 } }, /credHelpers\["x"\]/],
  ] as const) {
    it(`rejects ${JSON.stringify(config)} without echoing secrets`, () => {
      assert.throws(() => DockerCredentials.fromObject(config), (err: Error) => err instanceof InvalidArgumentError && why.test(err.message) && !err.message.includes('nocolon'));
    });
  }

  describe('files and credential helpers', () => {
    let dir: string;
    before(async () => {
      dir = await tempDir('dockercfg');
      const helper = (name: string, body: string) => fsp.writeFile(path.join(dir, `docker-credential-${name}`), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
      await helper('good', 'read url; if [ "$url" = "helped.example.com" ]; then echo \'{"ServerURL":"x","Username":"hu","Secret":"hs"}\'; else echo "credentials not found in native keychain"; exit 1; fi');
      await helper('token', 'read url; echo \'{"Username":"<token>","Secret":"refresh-secret"}\'');
      await helper('slow', 'exec sleep 30');
      await helper('broken', 'echo "leaked-secret-ish output"; exit 3');
    });
    after(async () => {
      await fsp.rm(dir, { recursive: true, force: true });
    });

    it('reads a file; a missing file means no credentials; bad JSON is an error', async () => {
      const file = path.join(dir, 'config.json');
      await fsp.writeFile(file, JSON.stringify({ auths: { 'a.example.com': { auth: b64('x:y') } } }));
      assert.equal((await (await DockerCredentials.fromFile(file)).get('a.example.com'))?.password, 'y');
      assert.equal(await (await DockerCredentials.fromFile(path.join(dir, 'missing.json'))).get('a.example.com'), undefined);
      await fsp.writeFile(file, '{');
      await assert.rejects(DockerCredentials.fromFile(file), /invalid JSON/);
    });

    it('asks credHelpers, then credsStore, and falls back to auths', async () => {
      const logger = recordingLogger();
      const creds = DockerCredentials.fromObject(
        {
          auths: { 'helped.example.com': { auth: b64('file:fallback') }, 'other.example.com': { auth: b64('o:p') } },
          credHelpers: { 'helped.example.com': 'good', 'tok.example.com': 'token' },
          credsStore: 'good',
        },
        { helperSearchPath: ['/nonexistent', dir], logger },
      );
      assert.deepEqual(await creds.get('helped.example.com'), { username: 'hu', password: 'hs' });
      assert.deepEqual(await creds.get('tok.example.com'), { identityToken: 'refresh-secret' });
      assert.deepEqual(await creds.get('other.example.com'), { username: 'o', password: 'p', identityToken: undefined, registryToken: undefined }, 'store has nothing: auths');
      assert.ok(!logger.lines.join('\n').includes('refresh-secret'));
    });

    it('skips helpers that are missing, failing or too slow, without logging their output', async () => {
      const logger = recordingLogger();
      const cfg = {
        auths: { 'slow.example.com': { auth: b64('s:fallback') } },
        credHelpers: { 'slow.example.com': 'slow', 'broken.example.com': 'broken', 'absent.example.com': 'absent' },
      };
      const creds = DockerCredentials.fromObject(cfg, { helperSearchPath: [dir], helperTimeoutMs: 300, logger });
      const started = Date.now();
      assert.equal((await creds.get('slow.example.com'))?.password, 'fallback');
      assert.ok(Date.now() - started < 5_000, 'the helper timeout is enforced');
      assert.equal(await creds.get('broken.example.com'), undefined);
      assert.equal(await creds.get('absent.example.com'), undefined);
      const log = logger.lines.join('\n');
      assert.match(log, /timed out after 300 ms/);
      assert.match(log, /failed \(exit 3\)/);
      assert.match(log, /docker-credential-absent not found/);
      assert.ok(!log.includes('leaked-secret-ish'));
      const noPath = DockerCredentials.fromObject(cfg);
      assert.equal((await noPath.get('slow.example.com'))?.password, 'fallback', 'without a search path helpers are never run');
    });
  });
});
