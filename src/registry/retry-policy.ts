/**
 * When and how long to wait before retrying a registry request: bounded attempts, exponential
 * back-off with full jitter, `Retry-After` honoured up to a ceiling. Only transient failures are
 * retried: network errors and timeouts, 408, 429 and 5xx. Other 4xx are final (401 is handled by
 * the authorizer, once).
 */
import { UnavailableError, errorMessage, isClipError } from '../errors';
import { RegistryLogger } from './logger';
export interface RetryPolicy {
  /** Attempts per request, the first included. */
  maxAttempts: number;
  /** Back-off before the first retry; doubled for each further one. */
  baseDelayMs: number;
  /** Ceiling of one back-off. */
  maxDelayMs: number;
  /** Ceiling applied to a server's `Retry-After`. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = {
  maxAttempts: 4,
  baseDelayMs: 200,
  maxDelayMs: 5_000,
  maxRetryAfterMs: 10_000,
};

export function isRetriableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** Error codes of failures that may go away on their own: sockets, DNS hiccups, undici timeouts. */
const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'EADDRNOTAVAIL',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

/** Codes along the cause chain of a raw (non-clip) error; clip's own errors are final decisions, never transient. */
function codesOf(err: unknown): string[] {
  const codes: string[] = [];
  for (let e: unknown = err, depth = 0; e instanceof Error && !isClipError(e) && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') codes.push(code);
  }
  return codes;
}

/** The most telling error code of `err` or its causes (a transient one first), for messages. */
export function errorCode(err: unknown): string | undefined {
  const codes = codesOf(err);
  return codes.find((c) => TRANSIENT_CODES.has(c)) ?? codes[0];
}

export function isTransientError(err: unknown): boolean {
  return codesOf(err).some((c) => TRANSIENT_CODES.has(c));
}

/** `Retry-After` in milliseconds (delay-seconds or an HTTP date), or undefined when absent or invalid. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined || v.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(v)) return Number(v) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Delay before retry number `retry` (1 for the first retry). */
export function backoffDelay(policy: RetryPolicy, retry: number, retryAfterMs?: number, random = Math.random): number {
  if (retryAfterMs !== undefined) return Math.min(retryAfterMs, policy.maxRetryAfterMs);
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** Sleeps `ms`, rejecting with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortReason(signal));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortReason(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function abortReason(signal: AbortSignal): Error {
  const reason: unknown = signal.reason;
  if (reason instanceof Error) return reason;
  const err = new Error('the operation was aborted');
  err.name = 'AbortError';
  return err;
}

export interface RetryContext {
  policy: RetryPolicy;
  logger: RegistryLogger;
  /** Names the operation in log lines and errors, e.g. `GET http://host/v2/a/blobs/sha256:…` (redacted). */
  what: string;
  signal?: AbortSignal;
}

/**
 * Runs `attempt` until it succeeds, retrying only transient network errors (a body cut off or timed
 * out mid-read); clip's typed errors and aborts pass straight through. The last transient failure
 * becomes an UnavailableError with the original as its cause.
 */
export async function retryTransient<T>(ctx: RetryContext, attempt: (n: number) => Promise<T>): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt(n);
    } catch (err) {
      if (ctx.signal?.aborted) throw abortReason(ctx.signal);
      if (!isTransientError(err)) throw err;
      if (n >= ctx.policy.maxAttempts) {
        throw new UnavailableError(`${ctx.what}: ${describeError(err)} (gave up after ${n} attempts)`, { cause: err });
      }
      const delay = backoffDelay(ctx.policy, n);
      ctx.logger.warn(`${ctx.what}: ${describeError(err)}; retrying in ${delay} ms (attempt ${n + 1}/${ctx.policy.maxAttempts})`);
      await sleep(delay, ctx.signal);
    }
  }
}

/** One line for a raw network error: its code and message. */
export function describeError(err: unknown): string {
  const code = errorCode(err);
  const message = errorMessage(err);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

/** `promise`, or the signal's reason as soon as it aborts (a shared request goes on for its other waiters). */
export function untilAborted<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortReason(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
