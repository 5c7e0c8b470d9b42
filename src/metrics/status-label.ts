/**
 * The `status` label of registry responses, bounded whatever a registry sends: the codes a registry
 * normally answers with keep their number, any other code becomes its class ("2xx" … "5xx", else
 * "other"), and requests that got no response are "network" or "timeout".
 */
export type RequestOutcome = number | 'network' | 'timeout';

const KNOWN_CODES = new Set([200, 201, 202, 204, 206, 301, 302, 303, 307, 308, 400, 401, 403, 404, 405, 408, 416, 429, 500, 502, 503, 504]);

export function registryStatusLabel(outcome: RequestOutcome): string {
  if (outcome === 'network' || outcome === 'timeout') return outcome;
  if (!Number.isInteger(outcome)) return 'other';
  if (KNOWN_CODES.has(outcome)) return String(outcome);
  return outcome >= 200 && outcome < 600 ? `${Math.floor(outcome / 100)}xx` : 'other';
}
