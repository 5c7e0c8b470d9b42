import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger, logContext } from '../../../src/daemon/logger';
import { RateLimiter, messageKind } from '../../../src/daemon/rate-limiter';

function sink(): { stream: Writable; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString().split('\n').filter((l) => l !== ''));
      done();
    },
  });
  return { stream, lines };
}

describe('rate limiter', () => {
  const setup = (burst = 3) => {
    let now = 1_000_000;
    const summaries: string[] = [];
    const limiter = new RateLimiter({ windowMs: 10_000, burst, timer: false, now: () => now, onSummary: (level, m) => summaries.push(`${level} ${m}`) });
    return { limiter, summaries, advance: (ms: number) => (now += ms) };
  };

  it('lets `burst` lines of a kind through per window and summarises the rest when the window ends', () => {
    const { limiter, summaries, advance } = setup();
    const admitted = [];
    for (let i = 0; i < 315; i++) admitted.push(limiter.admit('error', `read of sha256:${'ab'.repeat(32)} at offset ${i * 4096} failed: EIO`));
    assert.deepEqual(admitted.slice(0, 4), [true, true, true, false]);
    assert.equal(admitted.filter((a) => a).length, 3);
    assert.deepEqual(summaries, [], 'nothing before the window ends');
    advance(9_999);
    limiter.flush();
    assert.deepEqual(summaries, []);
    advance(1);
    assert.equal(limiter.admit('error', 'read of sha256:cd at offset 1 failed: EIO'), true, 'a new window');
    assert.deepEqual(summaries, [`error 312 more in the last 10 s like: read of sha256:${'ab'.repeat(32)} at offset ${314 * 4096} failed: EIO`]);
  });

  it('keeps kinds apart, leaves quiet windows without a summary, and writes pending summaries on close', () => {
    const { limiter, summaries, advance } = setup(1);
    assert.equal(limiter.admit('warn', 'registry 127.0.0.1:5000 unreachable'), true);
    assert.equal(limiter.admit('error', 'layer x: TLS handshake failed'), true);
    assert.equal(limiter.admit('warn', 'registry 127.0.0.1:5001 unreachable'), false, 'same kind: only the port differs');
    advance(20_000);
    limiter.flush();
    assert.deepEqual(summaries, ['warn 1 more in the last 10 s like: registry 127.0.0.1:5001 unreachable']);
    assert.equal(limiter.admit('warn', 'registry 127.0.0.1:5000 unreachable'), true);
    assert.equal(limiter.admit('warn', 'registry 127.0.0.1:5000 unreachable'), false);
    advance(2_000);
    limiter.close();
    assert.equal(summaries[1], 'warn 1 more in the last 2 s like: registry 127.0.0.1:5000 unreachable');
  });

  it('tracks a bounded number of kinds', () => {
    let now = 0;
    const limiter = new RateLimiter({ burst: 1, maxKeys: 2, timer: false, now: () => now, onSummary: () => undefined });
    assert.equal(limiter.admit('warn', 'a'), true);
    assert.equal(limiter.admit('warn', 'b'), true);
    assert.equal(limiter.admit('warn', 'c'), true, 'the shared bucket');
    assert.equal(limiter.admit('warn', 'd'), false, 'further kinds share one bucket');
  });

  it('blots out numbers and hex identifiers to find the kind of a line', () => {
    assert.equal(messageKind('span 12 of sha256:0123456789abcdef failed'), messageKind('span 7 of sha256:fedcba9876543210 failed'));
    assert.notEqual(messageKind('span 1 failed: EIO'), messageKind('span 1 failed: ENOENT'));
  });
});

describe('daemon logger', () => {
  it('writes text lines with the layer, snapshot and image of child loggers', () => {
    const { stream, lines } = sink();
    const logger = createLogger('info', { stream });
    logContext(logger, { layer: 'sha256:aa', snapshot: 'default/3/sha256:bb', image: undefined }).warn('falling back');
    logger.debug('not at info');
    logger.info('plain');
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /^\d{4}-\d\d-\d\dT\S+ warn falling back layer=sha256:aa snapshot=default\/3\/sha256:bb$/);
    assert.match(lines[1]!, /^\S+ info plain$/);
  });

  it('writes JSON objects with the same fields', () => {
    const { stream, lines } = sink();
    const logger = createLogger('info', { stream, format: 'json' });
    logContext(logger, { layer: 'sha256:aa', image: 'reg/app:1' }).error('fetch failed');
    const line = JSON.parse(lines[0]!) as Record<string, string>;
    assert.equal(line.level, 'error');
    assert.equal(line.message, 'fetch failed');
    assert.equal(line.layer, 'sha256:aa');
    assert.equal(line.image, 'reg/app:1');
    assert.ok(!Number.isNaN(Date.parse(line.timestamp!)));
  });

  it('rate-limits repeated warnings and errors, not info, and summarises them on close', () => {
    const { stream, lines } = sink();
    const logger = createLogger('info', { stream, rateLimit: { burst: 2, windowMs: 60_000, timer: false } });
    for (let i = 0; i < 50; i++) logger.error(`read ${i} failed: EIO`);
    for (let i = 0; i < 5; i++) logger.info(`progress ${i}`);
    assert.equal(lines.filter((l) => / error read \d+ failed: EIO$/.test(l)).length, 2);
    assert.equal(lines.filter((l) => / info progress/.test(l)).length, 5);
    logger.close();
    assert.match(lines[lines.length - 1]!, /^\S+ error 48 more in the last \d+ s like: read 49 failed: EIO$/);
  });
});
