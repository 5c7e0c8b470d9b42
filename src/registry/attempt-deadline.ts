/**
 * The time limits of one attempt of a registry request, from sending it through every redirect hop to the
 * last byte of the body:
 *
 * * an overall deadline: `requestMs` for a small response (manifest, token, HEAD, error body); for a large
 *   body of an expected size (blob streams, range reads, blobs fetched whole) `requestMs` plus the time that
 *   size takes at `minBytesPerSecond`;
 * * for a large body, the minimum-progress rule (progress-rule.ts) while the reader waits for chunks: every
 *   `minBytesPerSecond × progressWindowMs` bytes must arrive within `progressWindowMs` of waiting.
 *
 * Breaking either aborts the attempt's signal with a RegistryTooSlowError (code ETIMEDOUT, so it is retried
 * like any other timeout, a bounded number of times); the caller's signal aborts it with the caller's own
 * reason, at once. The timers stop when the body closes (read to its end, or destroyed).
 */
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { ProgressRule } from './progress-rule';

export interface TransferLimits {
  /** Overall deadline of one attempt with a small response; the base of a large body's deadline. */
  requestMs: number;
  /** Slowest transfer of a large body that is not cut off, in bytes per second of waiting. */
  minBytesPerSecond: number;
  /** Window over which minBytesPerSecond is judged, in milliseconds of waiting. */
  progressWindowMs: number;
}

/** A registry answered too slowly for the limits; transient (the code is ETIMEDOUT). */
export class RegistryTooSlowError extends Error {
  readonly code = 'ETIMEDOUT';
  override readonly name = 'RegistryTooSlowError';
}

/** 1536 → "1.5 KiB" */
export function formatBytes(n: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} bytes` : `${Number(v.toFixed(1))} ${units[u]}`;
}

const seconds = (ms: number): string => `${Number((ms / 1000).toFixed(1))} s`;

/** Overall deadline of one attempt, in milliseconds; `expectedBytes` undefined for a small response. */
export function attemptDeadlineMs(limits: TransferLimits, expectedBytes?: number): number {
  if (expectedBytes === undefined) return limits.requestMs;
  return limits.requestMs + Math.ceil((expectedBytes * 1000) / limits.minBytesPerSecond);
}

export class AttemptDeadline {
  private readonly controller = new AbortController();
  private readonly rule?: ProgressRule;
  private deadlineTimer?: NodeJS.Timeout;
  private progressTimer?: NodeJS.Timeout;
  private ended = false;
  private readonly onCallerAbort = (): void => this.abort(this.caller!.reason);

  constructor(
    private readonly limits: TransferLimits,
    expectedBytes: number | undefined,
    private readonly caller?: AbortSignal,
  ) {
    if (caller?.aborted) {
      this.abort(caller.reason);
      return;
    }
    caller?.addEventListener('abort', this.onCallerAbort, { once: true });
    const ms = attemptDeadlineMs(limits, expectedBytes);
    const why =
      expectedBytes === undefined
        ? 'the request timeout'
        : `the limit for ${formatBytes(expectedBytes)} at the minimum transfer rate of ${formatBytes(limits.minBytesPerSecond)}/s, plus ${seconds(limits.requestMs)}`;
    this.deadlineTimer = setTimeout(() => this.fail(`registry too slow: no complete response within ${seconds(ms)} (${why})`), ms);
    this.deadlineTimer.unref();
    if (expectedBytes !== undefined) {
      const minBytes = Math.max(1, Math.round((limits.minBytesPerSecond * limits.progressWindowMs) / 1000));
      this.rule = new ProgressRule(minBytes, limits.progressWindowMs);
    }
  }

  /** Aborts when a limit is broken or the caller aborts; pass it to the request. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Stops the timers once `body` closes (read to its end, or destroyed by anyone). */
  watch(body: Readable): void {
    if (body.closed) this.end();
    else body.once('close', () => this.end());
  }

  /** Stops the timers and lets go of the caller's signal. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.deadlineTimer);
    clearTimeout(this.progressTimer);
    this.caller?.removeEventListener('abort', this.onCallerAbort);
  }

  /** The chunks of `body`, with the minimum-progress rule applied to the time spent waiting for them. */
  async *chunks(body: Readable): AsyncGenerator<Buffer> {
    const rule = this.rule;
    if (!rule) {
      for await (const chunk of body) yield chunk as Buffer;
      return;
    }
    this.startWaiting(rule);
    for await (const chunk of body) {
      const c = chunk as Buffer;
      rule.received(c.length, performance.now());
      yield c;
      this.startWaiting(rule);
    }
    rule.received(0, performance.now());
  }

  private startWaiting(rule: ProgressRule): void {
    rule.waitStarted(performance.now());
    if (this.progressTimer === undefined) this.checkProgress(rule);
  }

  /** Fails the attempt if the rule is broken, else checks again when it could next be (while waiting). */
  private checkProgress(rule: ProgressRule): void {
    this.progressTimer = undefined;
    if (this.ended) return;
    const remaining = rule.remainingMs(performance.now());
    if (remaining === Number.POSITIVE_INFINITY) return; // not waiting: the next wait re-arms
    if (remaining <= 0) {
      const rate = formatBytes(this.limits.minBytesPerSecond);
      this.fail(
        `registry too slow: fewer than ${formatBytes(rule.minBytes)} in ${seconds(rule.windowMs)} ` +
          `(${formatBytes(rule.bytesInWindow)} received; the minimum transfer rate is ${rate}/s)`,
      );
      return;
    }
    this.progressTimer = setTimeout(() => this.checkProgress(rule), Math.ceil(remaining));
    this.progressTimer.unref();
  }

  private fail(message: string): void {
    this.abort(new RegistryTooSlowError(message));
  }

  private abort(reason: unknown): void {
    this.end();
    this.controller.abort(reason);
  }
}
