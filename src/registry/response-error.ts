/**
 * Turning a final non-success response into a typed error. The message names the request (redacted
 * URL), the status and the registry's own error codes from its JSON body (distribution's
 * `{"errors":[{"code","message"}]}`), read up to a small limit.
 */
import { ClipError } from '../errors';
import { RegistryAuthError, RegistryNotFoundError, RegistryRequestError } from './registry-errors';
import { TransportResponse } from './http-transport';
import { redactUrl } from './logger';
import { readLimited } from './read-body';

const DETAIL_LIMIT = 4096;

async function registryDetail(res: TransportResponse): Promise<string> {
  let text: string;
  try {
    text = (await readLimited(res, DETAIL_LIMIT, 'error body')).toString('utf8');
  } catch {
    return '';
  }
  try {
    const doc = JSON.parse(text) as { errors?: Array<{ code?: unknown; message?: unknown }> };
    const parts = (doc.errors ?? []).map((e) => [e.code, e.message].filter((x) => typeof x === 'string').join(': '));
    if (parts.length > 0) return ` (${parts.join('; ')})`;
  } catch {
    // not JSON: say nothing rather than echo arbitrary bytes
  }
  return '';
}

/** The typed error for a response the caller cannot use: 404 → not found, 401/403 → auth, else request error. */
export async function statusError(method: string, res: TransportResponse): Promise<ClipError> {
  const detail = await registryDetail(res);
  const message = `${method} ${redactUrl(res.url)}: HTTP ${res.statusCode}${detail}`;
  if (res.statusCode === 404) return new RegistryNotFoundError(message, { status: 404 });
  if (res.statusCode === 401 || res.statusCode === 403) return new RegistryAuthError(message, { status: res.statusCode });
  return new RegistryRequestError(message, { status: res.statusCode });
}
