import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CriKeychain, credentialsOf } from '../../../src/cri';
import { AuthConfig } from '../../../src/generated/cri/runtime/v1/image-service';

const auth = (fields: Partial<AuthConfig>): AuthConfig => AuthConfig.fromPartial(fields);

describe('credentialsOf (CRI AuthConfig)', () => {
  it('reads username and password, auth, identity and registry tokens', () => {
    assert.deepEqual(credentialsOf(auth({ username: 'u', password: 'p' })), { username: 'u', password: 'p' });
    assert.deepEqual(credentialsOf(auth({ auth: Buffer.from('u:p:with:colons').toString('base64') })), { username: 'u', password: 'p:with:colons' });
    assert.deepEqual(credentialsOf(auth({ identityToken: 'refresh' })), { identityToken: 'refresh' });
    assert.deepEqual(credentialsOf(auth({ registryToken: 'bearer' })), { registryToken: 'bearer' });
  });

  it('has nothing for an empty or unusable AuthConfig', () => {
    assert.equal(credentialsOf(undefined), undefined);
    assert.equal(credentialsOf(auth({})), undefined);
    assert.equal(credentialsOf(auth({ username: 'u' })), undefined);
    assert.equal(credentialsOf(auth({ auth: Buffer.from('no-colon').toString('base64') })), undefined);
  });
});

describe('CriKeychain', () => {
  const A = { username: 'a', password: '1' };
  const B = { username: 'b', password: '2' };

  it('answers for the registry and repository of a pulled reference only', async () => {
    const k = new CriKeychain();
    k.remember('registry.example:5000/team/app:v1', A);
    assert.deepEqual(await k.get('registry.example:5000', undefined, { repository: 'team/app' }), A);
    assert.equal(await k.get('registry.example:5000', undefined, { repository: 'team/other' }), undefined);
    assert.equal(await k.get('other.example', undefined, { repository: 'team/app' }), undefined);
    assert.equal(await k.get('registry.example:5000'), undefined, 'no repository, no answer');
  });

  it('normalises Docker Hub references and hosts', async () => {
    const k = new CriKeychain();
    k.remember('busybox', A);
    assert.deepEqual(await k.get('registry-1.docker.io', undefined, { repository: 'library/busybox' }), A);
  });

  it('a newer pull replaces the credentials; a failed pull puts the previous ones back', async () => {
    const k = new CriKeychain();
    k.remember('r.example/app:v1', A);
    const restore = k.remember('r.example/app:v1', B);
    assert.deepEqual(await k.get('r.example', undefined, { repository: 'app' }), B);
    restore();
    assert.deepEqual(await k.get('r.example', undefined, { repository: 'app' }), A);
    k.remember('r.example/app:v2', B);
    assert.deepEqual(await k.get('r.example', undefined, { repository: 'app' }), B, 'the newest pull of the repository wins');
  });

  it('forgets an image removed by reference or by image id', async () => {
    const k = new CriKeychain();
    k.remember('r.example/app:v1', A);
    k.remember('r.example/tool:v1', B);
    k.setImageId('r.example/tool:v1', 'sha256:' + 'b'.repeat(64));
    k.forget('r.example/app:v1');
    assert.equal(await k.get('r.example', undefined, { repository: 'app' }), undefined);
    k.forget('sha256:' + 'b'.repeat(64));
    assert.equal(await k.get('r.example', undefined, { repository: 'tool' }), undefined);
    assert.equal(k.size, 0);
  });

  it('ignores what is not an image reference', () => {
    const k = new CriKeychain();
    k.remember('NOT a ref', A);
    k.forget('');
    assert.equal(k.size, 0);
  });
});
