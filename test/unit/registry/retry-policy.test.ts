import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UnavailableError } from '../../../src/errors';
import { DEFAULT_RETRY_POLICY, parseContentRange, redactUrl } from '../../../src/registry';
import { backoffDelay, isRetriableStatus, isTransientError, parseRetryAfter } from '../../../src/registry/retry-policy';

describe('retry policy', () => {
  it('retries only transient statuses', () => {
    for (const s of [408, 429, 500, 502, 503, 504]) assert.ok(isRetriableStatus(s), String(s));
    for (const s of [200, 206, 400, 401, 403, 404, 405, 416]) assert.ok(!isRetriableStatus(s), String(s));
  });

  it('classifies network errors, not clip errors', () => {
    assert.ok(isTransientError(Object.assign(new Error('x'), { code: 'ECONNRESET' })));
    assert.ok(isTransientError(Object.assign(new Error('x'), { code: 'UND_ERR_HEADERS_TIMEOUT' })));
    assert.ok(isTransientError(new Error('wrapped', { cause: Object.assign(new Error('x'), { code: 'UND_ERR_SOCKET' }) })));
    assert.ok(!isTransientError(new UnavailableError('gave up', { cause: Object.assign(new Error('x'), { code: 'ECONNRESET' }) })));
    assert.ok(!isTransientError(Object.assign(new Error('x'), { code: 'CERT_HAS_EXPIRED' })));
    assert.ok(!isTransientError(new Error('plain')));
  });

  it('backs off exponentially with jitter, up to a ceiling', () => {
    const p = { ...DEFAULT_RETRY_POLICY, baseDelayMs: 100, maxDelayMs: 1000 };
    assert.equal(backoffDelay(p, 1, undefined, () => 0), 50);
    assert.equal(backoffDelay(p, 1, undefined, () => 1), 100);
    assert.equal(backoffDelay(p, 3, undefined, () => 1), 400);
    assert.equal(backoffDelay(p, 10, undefined, () => 1), 1000);
    const seen = new Set(Array.from({ length: 20 }, () => backoffDelay(p, 2)));
    assert.ok(seen.size > 1, 'jitter varies the delay');
    for (const d of seen) assert.ok(d >= 100 && d <= 200);
  });

  it('honours Retry-After within bounds', () => {
    assert.equal(parseRetryAfter('3'), 3000);
    assert.equal(parseRetryAfter(new Date(Date.now() + 5000).toUTCString(), Date.now()) !== undefined, true);
    assert.equal(parseRetryAfter('soon'), undefined);
    assert.equal(parseRetryAfter(undefined), undefined);
    const p = { ...DEFAULT_RETRY_POLICY, maxRetryAfterMs: 2000 };
    assert.equal(backoffDelay(p, 1, 500), 500);
    assert.equal(backoffDelay(p, 1, 3_600_000), 2000);
  });

  it('parses Content-Range and redacts URLs for logs', () => {
    assert.deepEqual(parseContentRange('bytes 0-9/100'), { start: 0, end: 9, total: 100 });
    assert.deepEqual(parseContentRange('bytes 5-5/*'), { start: 5, end: 5 });
    assert.equal(parseContentRange('bytes */100'), undefined);
    assert.equal(redactUrl('https://user:pw@s3.example.com/bucket/blob?X-Amz-Signature=secret'), 'https://s3.example.com/bucket/blob?…');
  });
});
