import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseWwwAuthenticate } from '../../../src/registry';

describe('WWW-Authenticate parsing', () => {
  it('parses a Docker Hub bearer challenge', () => {
    assert.deepEqual(
      parseWwwAuthenticate('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"'),
      [{ scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/nginx:pull' } }],
    );
  });

  it('keeps commas and escapes inside quoted values, and separates challenges', () => {
    const got = parseWwwAuthenticate('Bearer realm="https://a/token", scope="repository:x/y:pull,push", error="insufficient_scope", Basic realm="say \\"hi\\""');
    assert.equal(got.length, 2);
    assert.deepEqual(got[0], { scheme: 'bearer', params: { realm: 'https://a/token', scope: 'repository:x/y:pull,push', error: 'insufficient_scope' } });
    assert.deepEqual(got[1], { scheme: 'basic', params: { realm: 'say "hi"' } });
  });

  it('accepts token values, odd spacing, case and several header lines', () => {
    const got = parseWwwAuthenticate(['basic REALM = registry , charset=UTF-8', 'BEARER realm="r"']);
    assert.deepEqual(got, [
      { scheme: 'basic', params: { realm: 'registry', charset: 'UTF-8' } },
      { scheme: 'bearer', params: { realm: 'r' } },
    ]);
  });

  it('handles bare schemes, token68 and empty input', () => {
    assert.deepEqual(parseWwwAuthenticate('Basic'), [{ scheme: 'basic', params: {} }]);
    assert.deepEqual(parseWwwAuthenticate('Negotiate abc+/def==, Basic realm="x"'), [
      { scheme: 'negotiate', params: {}, token68: 'abc+/def==' },
      { scheme: 'basic', params: { realm: 'x' } },
    ]);
    assert.deepEqual(parseWwwAuthenticate(undefined), []);
    assert.deepEqual(parseWwwAuthenticate(''), []);
    assert.deepEqual(parseWwwAuthenticate('Bearer realm="unterminated'), [{ scheme: 'bearer', params: { realm: 'unterminated' } }]);
  });
});
