/**
 * Where the metrics endpoint listens ([metrics] address): "" (off), "host:port" ("127.0.0.1:9122",
 * "[::1]:9122"; port 0 picks a free port, logged and shown by `clip status`) or an absolute unix socket path.
 */
import { InvalidArgumentError } from '../errors';

export type ListenAddress = { kind: 'off' } | { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

export function parseListenAddress(value: string): ListenAddress {
  if (value === '') return { kind: 'off' };
  if (value.startsWith('/')) return { kind: 'unix', path: value };
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new InvalidArgumentError(`invalid listen address ${JSON.stringify(value)}: use "host:port" (e.g. "127.0.0.1:9122"), an absolute unix socket path, or ""`);
  }
  return { kind: 'tcp', host: m[1] ?? m[2]!, port };
}
