import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RegistryAuthError } from '../../../src/registry';
import { tokenRealm } from '../../../src/registry/token-fetcher';

describe('token realm rule', () => {
  const https = new URL('https://registry.example.com/v2');
  const http = new URL('http://127.0.0.1:5000/v2');

  it('accepts an https realm on any host for an https registry', () => {
    assert.equal(tokenRealm('https://auth.example.com/token', https).href, 'https://auth.example.com/token');
  });

  it('refuses a plain-http realm for an https registry, on another host or its own', () => {
    for (const realm of ['http://auth.example.com/token', 'http://registry.example.com/token', 'http://127.0.0.1/token']) {
      assert.throws(
        () => tokenRealm(realm, https),
        (err: Error) => err instanceof RegistryAuthError && /registry uses https, so its token realm must too/.test(err.message),
      );
    }
  });

  it('lets a plain-http registry use an http or https realm', () => {
    assert.equal(tokenRealm('http://127.0.0.1:5001/token', http).protocol, 'http:');
    assert.equal(tokenRealm('https://auth.example.com/token', http).protocol, 'https:');
  });

  it('refuses a realm that is not an http(s) URL, without echoing a query', () => {
    for (const realm of [undefined, '', 'not a url', 'ftp://auth.example.com/token', 'file:///etc/passwd']) {
      assert.throws(() => tokenRealm(realm, http), RegistryAuthError);
    }
    assert.throws(
      () => tokenRealm('http://auth.example.com/token?secret=x', https),
      (err: Error) => !err.message.includes('secret=x'),
    );
  });
});
