import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NotImplementedError, UnavailableError } from '../../src/errors';
import { DigestMismatchError, RegistryAuthError, RegistryNotFoundError } from '../../src/registry';
import { FallbackContext, describeFallback, fallbackHint, fallbackReason, imageHost } from '../../src/snapshotter/fallback-reason';
import { LABEL_CRI_IMAGE_REF } from '../../src/snapshotter/labels';

const coded = (code: string, message = code): Error => Object.assign(new Error(message), { code });
const wrapped = (cause: unknown): Error => new UnavailableError('GET https://r/v2/: failed (gave up after 4 attempts)', { cause });

describe('why a layer is not served lazily', () => {
  it('classifies failures along the cause chain into a bounded set of reasons', () => {
    assert.equal(fallbackReason(wrapped(coded('ERR_SSL_WRONG_VERSION_NUMBER'))), 'tls');
    assert.equal(fallbackReason(wrapped(coded('DEPTH_ZERO_SELF_SIGNED_CERT'))), 'tls');
    assert.equal(fallbackReason(new Error('write EPROTO 4057…:SSL routines:ssl3_get_record:wrong version number')), 'tls');
    assert.equal(fallbackReason(wrapped(coded('ECONNREFUSED'))), 'unreachable');
    assert.equal(fallbackReason(wrapped(coded('ENOTFOUND'))), 'unreachable');
    assert.equal(fallbackReason(wrapped(coded('UND_ERR_HEADERS_TIMEOUT'))), 'timeout');
    assert.equal(fallbackReason(new RegistryAuthError('401')), 'auth');
    assert.equal(fallbackReason(new Error('index', { cause: new RegistryNotFoundError('404') })), 'not-found');
    assert.equal(fallbackReason(new DigestMismatchError('bad bytes')), 'digest-mismatch');
    assert.equal(fallbackReason(new NotImplementedError('encrypted layers are not supported')), 'unsupported');
    assert.equal(fallbackReason(new Error('something else')), 'other');
  });

  it('finds the registry host of the image a Prepare names', () => {
    assert.equal(imageHost({ [LABEL_CRI_IMAGE_REF]: '127.0.0.1:5000/app:1' }), '127.0.0.1:5000');
    assert.equal(imageHost({ [LABEL_CRI_IMAGE_REF]: 'busybox:latest' }), 'docker.io');
    assert.equal(imageHost({}), undefined);
    assert.equal(imageHost({ [LABEL_CRI_IMAGE_REF]: 'Not A Ref' }), undefined);
  });

  it('says how to fix a TLS failure: with no hosts.toml, point hosts_dir at containerd\'s config_path', async () => {
    const none: FallbackContext = { hostsDirs: ['/etc/containerd/certs.d'], hostsFile: async () => undefined };
    assert.equal(
      await fallbackHint('tls', '127.0.0.1:5000', none),
      "TLS handshake with 127.0.0.1:5000 failed and no hosts.toml for that host was found in /etc/containerd/certs.d: if containerd reaches it over plain http, point [registry] hosts_dir at containerd's config_path",
    );
    const found: FallbackContext = { hostsDirs: ['/d'], hostsFile: async (host) => `/d/${host}/hosts.toml` };
    assert.match((await fallbackHint('tls', 'r:5000', found))!, /; \/d\/r:5000\/hosts\.toml configures that host: check its server/);
    assert.match((await fallbackHint('auth', 'r', none))!, /\[registry\] docker_config/);
    assert.match((await fallbackHint('timeout', 'r', none))!, /request_timeout_seconds/);
    assert.match((await fallbackHint('unreachable', 'r', { hostsDirs: [], hostsFile: async () => undefined }))!, /\(\(none: \[registry\] hosts_dir is empty\)\)/);
    assert.equal(await fallbackHint('other', 'r', none), undefined);
  });

  it('puts it on one line', async () => {
    const ctx: FallbackContext = { hostsDirs: ['/a', '/b'], hostsFile: async () => undefined };
    const labels = { [LABEL_CRI_IMAGE_REF]: 'reg.example:5000/app:1' };
    const tls = await describeFallback('sha256:c1', labels, wrapped(coded('ERR_SSL_WRONG_VERSION_NUMBER')), ctx);
    assert.equal(tls.reason, 'tls');
    assert.match(tls.line, /^layer sha256:c1 cannot be served lazily \(tls\), containerd unpacks it instead: GET https:\/\/r\/v2\/: failed \(gave up after 4 attempts\)\. Fix: TLS handshake with reg\.example:5000 failed and no hosts\.toml for that host was found in \/a:\/b: /);
    const other = await describeFallback('sha256:c2', {}, new Error('two\n  lines'), ctx);
    assert.equal(other.line, 'layer sha256:c2 cannot be served lazily (other), containerd unpacks it instead: two lines');
  });
});
