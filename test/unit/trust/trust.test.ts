/**
 * The trust module's pure parts: DSSE envelopes, archive statements signed and verified with ed25519 keys
 * (tampering with any field, the payload type or the signature is refused), key files, repository
 * patterns, and what a policy allows.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { InvalidArgumentError } from '../../../src/errors';
import { MAX_ENVELOPE_BYTES, parseEnvelope, preAuthEncoding } from '../../../src/trust/dsse';
import {
  RepositoryPattern,
  STATEMENT_PAYLOAD_TYPE,
  TrustPolicy,
  UntrustedError,
  loadPublicKey,
  loadSigningKey,
  parsePublicKey,
  parseSigningKey,
  signStatement,
  verifyStatement,
} from '../../../src/trust';
import { tempDir } from '../../helpers/processes';

const d = (c: string): string => `sha256:${c.repeat(64)}`;
const STATEMENT = { archive: d('a'), layer: d('b'), diffId: d('c'), manifest: d('d') };

function pems() {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return { pub: publicKey.export({ type: 'spki', format: 'pem' }).toString(), priv: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString() };
}

describe('DSSE envelopes', () => {
  it('pre-auth encoding is the one the DSSE protocol defines', () => {
    assert.equal(preAuthEncoding('http://example.com/HelloWorld', Buffer.from('hello world')).toString(), 'DSSEv1 29 http://example.com/HelloWorld 11 hello world');
  });

  it('refuses malformed or oversized envelopes with a clear error', () => {
    const cases: Array<[string, RegExp]> = [
      ['not json', /not JSON/],
      ['[]', /not an object/],
      ['{"payloadType":"x","payload":"","signatures":[]}', /no signatures/],
      ['{"payloadType":"x","payload":"%%%","signatures":[{"sig":""}]}', /payload is not base64/],
      [JSON.stringify({ payloadType: 'x', payload: '', signatures: new Array(9).fill({ sig: '' }) }), /more than 8 signatures/],
      [JSON.stringify({ payloadType: 'x', payload: 'A'.repeat(MAX_ENVELOPE_BYTES), signatures: [{ sig: '' }] }), /larger than/],
    ];
    for (const [text, message] of cases) assert.throws(() => parseEnvelope(text), (err: unknown) => err instanceof InvalidArgumentError && message.test((err as Error).message), text.slice(0, 40));
  });
});

describe('archive statements', () => {
  const a = pems();
  const key = parseSigningKey(a.priv, 'a');
  const pub = parsePublicKey(a.pub, 'a');
  const other = parsePublicKey(pems().pub, 'b');

  it('verify against the signing key, name it, and give back the statement', () => {
    const envelope = signStatement(STATEMENT, key);
    assert.equal(signStatement(STATEMENT, key), envelope, 'deterministic');
    assert.equal(key.keyId, pub.keyId, 'a private key and its public key share a key ID');
    assert.deepEqual(verifyStatement(envelope, [other, pub]), { statement: STATEMENT, keyId: pub.keyId });
  });

  it('refuse another key, any changed field, another payload type, and a changed signature', () => {
    const envelope = JSON.parse(signStatement(STATEMENT, key)) as { payload: string; payloadType: string; signatures: Array<{ keyid: string; sig: string }> };
    assert.throws(() => verifyStatement(JSON.stringify(envelope), [other]), UntrustedError);
    for (const field of Object.keys(STATEMENT) as Array<keyof typeof STATEMENT>) {
      const payload = JSON.parse(Buffer.from(envelope.payload, 'base64').toString()) as Record<string, string>;
      payload[field] = d('f');
      const changed = { ...envelope, payload: Buffer.from(JSON.stringify(payload)).toString('base64') };
      assert.throws(() => verifyStatement(JSON.stringify(changed), [pub]), UntrustedError, field);
    }
    assert.throws(() => verifyStatement(JSON.stringify({ ...envelope, payloadType: 'application/vnd.in-toto+json' }), [pub]), /not a clip archive statement/);
    const sig = Buffer.from(envelope.signatures[0]!.sig, 'base64');
    sig[3]! ^= 1;
    assert.throws(() => verifyStatement(JSON.stringify({ ...envelope, signatures: [{ keyid: '', sig: sig.toString('base64') }] }), [pub]), UntrustedError);
    // A signature without a key ID is tried against every trusted key.
    assert.equal(verifyStatement(JSON.stringify({ ...envelope, signatures: [{ keyid: '', sig: envelope.signatures[0]!.sig }] }), [other, pub]).keyId, pub.keyId);
    assert.equal(envelope.payloadType, STATEMENT_PAYLOAD_TYPE);
  });

  it('refuse to sign statements whose fields are not digests', () => {
    assert.throws(() => signStatement({ ...STATEMENT, diffId: 'sha256:xyz' }, key), /diffId is not a sha256 digest/);
  });
});

describe('key files', () => {
  let dir: string;
  before(async () => {
    dir = await tempDir('trust-keys');
  });
  after(() => fsp.rm(dir, { recursive: true, force: true }));

  it('load OpenSSL-style PEM files, and refuse other key types and non-keys', async () => {
    const k = pems();
    await fsp.writeFile(path.join(dir, 'sign.pem'), k.priv);
    await fsp.writeFile(path.join(dir, 'sign.pub'), k.pub);
    const signing = await loadSigningKey(path.join(dir, 'sign.pem'));
    assert.equal((await loadPublicKey(path.join(dir, 'sign.pub'))).keyId, signing.keyId);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    await fsp.writeFile(path.join(dir, 'rsa.pub'), rsa);
    await assert.rejects(loadPublicKey(path.join(dir, 'rsa.pub')), /an rsa key; clip signs and verifies with ed25519 keys/);
    await fsp.writeFile(path.join(dir, 'junk'), 'hello');
    await assert.rejects(loadPublicKey(path.join(dir, 'junk')), /not a PEM public key/);
    await assert.rejects(loadPublicKey(path.join(dir, 'missing')), /ENOENT/);
  });
});

describe('repository patterns and the policy', () => {
  it('match exact names and prefixes ending in /*, linearly, and refuse anything else', () => {
    const team = RepositoryPattern.parse('registry.example.com/team/*');
    assert.ok(team.matches('registry.example.com/team/app'));
    assert.ok(team.matches('registry.example.com/team/a/b'));
    assert.ok(!team.matches('registry.example.com/team'));
    assert.ok(!team.matches('registry.example.com/teamx/app'));
    assert.ok(!team.matches('evil.example.com/team/app'));
    const exact = RepositoryPattern.parse('docker.io/library/debian');
    assert.ok(exact.matches('docker.io/library/debian') && !exact.matches('docker.io/library/debian2'));
    assert.ok(RepositoryPattern.parse('127.0.0.1:5000/*').matches('127.0.0.1:5000/x'));
    for (const bad of ['https://r.example.com/x', 'r.example.com/*/x', 'r.example.com/Team', '*', 'library/*', 'r.example.com/a*']) {
      assert.throws(() => RepositoryPattern.parse(bad), InvalidArgumentError, bad);
    }
  });

  it('allows local archives always, signed and repository ones only while their key or pattern is configured', () => {
    const k = parsePublicKey(pems().pub, 'k');
    const policy = new TrustPolicy([k], [RepositoryPattern.parse('r.example.com/team/*')]);
    assert.ok(policy.trustsPublished && !TrustPolicy.localOnly().trustsPublished);
    assert.ok(policy.allows({ source: 'local' }) && TrustPolicy.localOnly().allows({ source: 'local' }));
    assert.ok(policy.allows({ source: 'signed', keyId: k.keyId }));
    assert.ok(!policy.allows({ source: 'signed', keyId: d('0') }));
    assert.ok(policy.allows({ source: 'repository', repository: 'r.example.com/team/*' }));
    assert.ok(!policy.allows({ source: 'repository', repository: 'r.example.com/*' }));
    assert.equal(policy.trustedRepository('r.example.com/team/app')?.text, 'r.example.com/team/*');
    assert.throws(() => TrustPolicy.localOnly().verify('{}'), /no trusted key is configured/);
  });
});
