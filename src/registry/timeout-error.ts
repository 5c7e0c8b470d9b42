/**
 * Whether a failed request was cut off by a deadline (undici's and Node's timeout codes, an AbortSignal
 * timeout, clip's own RegistryTooSlowError with code ETIMEDOUT) rather than by a network error, looking
 * along the error's cause chain.
 */
export function isTimeoutError(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e !== undefined && depth < 8; e = e instanceof Error ? e.cause : undefined, depth++) {
    const code = (e as { code?: unknown } | undefined)?.code;
    const name = (e as { name?: unknown } | undefined)?.name;
    if ((typeof code === 'string' && /TIMEOUT$|^ETIMEDOUT$/.test(code)) || name === 'TimeoutError') return true;
  }
  return false;
}
