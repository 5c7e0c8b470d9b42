/**
 * The logging seam of the registry client. A winston logger fits it as is.
 *
 * Rule for every caller: log lines carry the method, a redacted URL and a status, never request
 * headers, credentials or tokens. `redactUrl` drops user info and query strings, because pre-signed
 * storage URLs carry their signature in the query.
 */
export interface RegistryLogger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
}

export const silentLogger: RegistryLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
};

/** A URL fit for logs and error messages: scheme, host and path only. */
export function redactUrl(url: URL | string): string {
  let u: URL;
  try {
    u = new URL(url.toString());
  } catch {
    return '<invalid url>';
  }
  return `${u.protocol}//${u.host}${u.pathname}${u.search ? '?…' : ''}`;
}
