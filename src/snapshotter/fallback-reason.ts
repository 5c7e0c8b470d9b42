/**
 * Why a layer could not be served lazily, in words an operator can act on. A Prepare that falls back to
 * containerd's unpack logs one line with a bounded reason (also fit for a metrics label) and, where there
 * is one, the fix: "TLS handshake with 127.0.0.1:5000 failed and no hosts.toml for that host was found in
 * /etc/containerd/certs.d: if containerd reaches it over plain http, point [registry] hosts_dir at
 * containerd's config_path".
 */
import { NotImplementedError, errorMessage } from '../errors';
import { DigestMismatchError, RegistryAuthError, RegistryNotFoundError, parseReference } from '../registry';
import { LABEL_CRI_IMAGE_REF } from './labels';
import { Labels } from './types';

export const FALLBACK_REASONS = ['tls', 'unreachable', 'timeout', 'auth', 'not-found', 'unsupported', 'digest-mismatch', 'other'] as const;
export type FallbackReason = (typeof FALLBACK_REASONS)[number];

export interface FallbackContext {
  /** Hosts directories clip searches ([registry] hosts_dir), in order. */
  hostsDirs: readonly string[];
  /** The hosts.toml that configures `host`, if any. */
  hostsFile(host: string): Promise<string | undefined>;
}

function causes(err: unknown): unknown[] {
  const all: unknown[] = [];
  for (let e: unknown = err; e !== undefined && all.length < 8; e = e instanceof Error ? e.cause : undefined) all.push(e);
  return all;
}

function codeOf(e: unknown): string {
  const code = (e as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : '';
}

/** The reason class of a failed remote mount, from the errors along its cause chain. */
export function fallbackReason(err: unknown): FallbackReason {
  const chain = causes(err);
  const some = (test: (e: unknown) => boolean): boolean => chain.some(test);
  const text = chain.map((e) => `${codeOf(e)} ${errorMessage(e)}`).join('\n');
  if (some((e) => /^(ERR_SSL_|ERR_TLS_)|CERT/.test(codeOf(e)) || codeOf(e) === 'EPROTO') || /\b(SSL|TLS) |certificate/i.test(text)) return 'tls';
  if (some((e) => /TIMEOUT$|^ETIMEDOUT$/.test(codeOf(e)))) return 'timeout';
  if (some((e) => /^(ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ENETDOWN|ENOTFOUND|EAI_AGAIN|UND_ERR_SOCKET)$/.test(codeOf(e)))) return 'unreachable';
  if (some((e) => e instanceof RegistryAuthError)) return 'auth';
  if (some((e) => e instanceof RegistryNotFoundError)) return 'not-found';
  if (some((e) => e instanceof DigestMismatchError)) return 'digest-mismatch';
  if (some((e) => e instanceof NotImplementedError)) return 'unsupported';
  return 'other';
}

/** The registry host a Prepare's labels name ("127.0.0.1:5000"), if they name an image. */
export function imageHost(labels: Labels): string | undefined {
  const ref = labels[LABEL_CRI_IMAGE_REF];
  if (!ref) return undefined;
  try {
    return parseReference(ref).domain;
  } catch {
    return undefined;
  }
}

/** What to do about a fallback of `reason` for an image on `host`. */
export async function fallbackHint(reason: FallbackReason, host: string | undefined, ctx: FallbackContext): Promise<string | undefined> {
  const where = host ?? 'the registry';
  const dirs = ctx.hostsDirs.length > 0 ? ctx.hostsDirs.join(':') : '(none: [registry] hosts_dir is empty)';
  const file = host ? await ctx.hostsFile(host).catch(() => undefined) : undefined;
  switch (reason) {
    case 'tls':
      return file
        ? `TLS handshake with ${where} failed; ${file} configures that host: check its server and host URLs (http:// for a plain-http registry) and the registry's certificate`
        : `TLS handshake with ${where} failed and no hosts.toml for that host was found in ${dirs}: if containerd reaches it over plain http, point [registry] hosts_dir at containerd's config_path`;
    case 'unreachable':
      return `cannot connect to ${where}${file ? ` (configured by ${file})` : ''}: check that the registry is up and reachable from this node, and that [registry] hosts_dir (${dirs}) holds the same hosts.toml files containerd uses`;
    case 'timeout':
      return `${where} did not answer in time: check the network, or raise [registry] request_timeout_seconds`;
    case 'auth':
      return `${where} refused clip's credentials: containerd does not pass its own; give clip a docker config.json with them ([registry] docker_config)`;
    case 'not-found':
      return `${where} does not have the layer or image: check [registry] hosts_dir (${dirs}) against containerd's mirrors for that host`;
    case 'digest-mismatch':
      return `${where} served bytes that do not match their digest: check the registry or mirror`;
    case 'unsupported':
      return 'this layer cannot be served lazily (its format); containerd unpacks it, nothing to fix';
    case 'other':
      return undefined;
  }
}

/** The one log line of a fallback: what failed, the reason class and the fix. */
export async function describeFallback(
  target: string,
  labels: Labels,
  err: unknown,
  ctx: FallbackContext,
): Promise<{ reason: FallbackReason; line: string; hint?: string }> {
  const reason = fallbackReason(err);
  const hint = await fallbackHint(reason, imageHost(labels), ctx);
  const line = `layer ${target} cannot be served lazily (${reason}), containerd unpacks it instead: ${errorMessage(err).replace(/\s*\n\s*/g, ' ')}${hint ? `. Fix: ${hint}` : ''}`;
  return { reason, line, hint };
}
