/**
 * Getting a bearer token from a token realm (distribution's token authentication spec, docs/spec/auth/token.md and oauth.md):
 *
 * * with an identity (refresh) token: `POST realm` with an `application/x-www-form-urlencoded` body
 *   `grant_type=refresh_token&refresh_token=…&service=…&scope=…&client_id=…`; if the server answers
 *   400, 401, 404 or 405 the GET form below is tried, as containerd does;
 * * otherwise: `GET realm?service=…&scope=…[&scope=…]`, anonymously or with HTTP Basic credentials.
 *
 * The response's `token` or `access_token` is valid for `expires_in` seconds (60 when absent).
 * Requests go through HttpTransport, so credentials are sent to the realm's origin only.
 *
 * The realm comes from the registry's challenge, so it is checked first (tokenRealm): an http(s) URL, and
 * https whenever the registry is reached over https. A plain-http realm of an https registry would send
 * the credentials and the token in clear text to whoever the registry names, so it is refused before any
 * request. A plain-http registry (a hosts.toml `server = "http://…"`) may name a plain-http realm.
 */
import { RegistryCredentials } from './credentials';
import { EndpointTls } from './endpoint';
import { RegistryAuthError, RegistryProtocolError } from './registry-errors';
import { HttpTransport, TransportResponse } from './http-transport';
import { redactUrl } from './logger';
import { discard, readLimited } from './read-body';
import { statusError } from './response-error';

export const DEFAULT_TOKEN_LIFETIME_S = 60;
const TOKEN_RESPONSE_LIMIT = 1 << 20;

export interface TokenRequest {
  realm: URL;
  service?: string;
  scopes: readonly string[];
  credentials?: RegistryCredentials;
  signal?: AbortSignal;
  /** TLS settings for the realm's origin (TransportRequest). */
  skipVerify?: boolean;
  tls?: EndpointTls;
}

export interface BearerToken {
  token: string;
  /** Milliseconds since the epoch after which the token must not be used. */
  expiresAt: number;
}

export interface TokenFetcherOptions {
  clientId?: string;
  now?: () => number;
}

/** The token realm a registry at `registry` named, if clip may send credentials to it; RegistryAuthError if not. */
export function tokenRealm(realm: string | undefined, registry: URL): URL {
  let url: URL;
  try {
    url = new URL(realm ?? '');
  } catch (err) {
    throw new RegistryAuthError(`${registry.host}: the registry's token realm is not a URL`, { status: 401, cause: err });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new RegistryAuthError(`${registry.host}: the registry's token realm ${redactUrl(url)} is not an http(s) URL`, { status: 401 });
  }
  if (registry.protocol === 'https:' && url.protocol !== 'https:') {
    throw new RegistryAuthError(
      `${registry.host}: refusing the token realm ${redactUrl(url)}: the registry uses https, so its token realm must too (no credentials were sent)`,
      { status: 401 },
    );
  }
  return url;
}

export function basicAuthorization(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
}

export class TokenFetcher {
  private readonly clientId: string;
  private readonly now: () => number;

  constructor(
    private readonly transport: HttpTransport,
    options: TokenFetcherOptions = {},
  ) {
    this.clientId = options.clientId ?? 'clip';
    this.now = options.now ?? Date.now;
  }

  async fetch(req: TokenRequest): Promise<BearerToken> {
    const creds = req.credentials;
    if (creds?.identityToken) {
      const res = await this.transport.send({
        method: 'POST',
        url: req.realm,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: this.form(req, creds.identityToken).toString(),
        signal: req.signal,
        skipVerify: req.skipVerify,
        tls: req.tls,
      });
      if (![400, 401, 404, 405].includes(res.statusCode)) return this.parse(res, 'POST');
      discard(res.body);
      this.transport.logger.debug(`POST ${redactUrl(req.realm)} -> ${res.statusCode}; trying GET for the token`);
    }
    const url = new URL(req.realm.href);
    if (req.service) url.searchParams.set('service', req.service);
    for (const scope of req.scopes) url.searchParams.append('scope', scope);
    const headers: Record<string, string> = {};
    if (creds?.username && creds.password) headers['authorization'] = basicAuthorization(creds.username, creds.password);
    else if (creds?.username && creds.identityToken) headers['authorization'] = basicAuthorization(creds.username, creds.identityToken);
    const res = await this.transport.send({ method: 'GET', url, headers, signal: req.signal, skipVerify: req.skipVerify, tls: req.tls });
    return this.parse(res, 'GET');
  }

  private form(req: TokenRequest, refreshToken: string): URLSearchParams {
    const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: this.clientId });
    if (req.service) form.set('service', req.service);
    if (req.scopes.length > 0) form.set('scope', req.scopes.join(' '));
    return form;
  }

  private async parse(res: TransportResponse, method: string): Promise<BearerToken> {
    const what = `${method} ${redactUrl(res.url)}`;
    if (res.statusCode === 401 || res.statusCode === 403) {
      const err = await statusError(method, res);
      throw new RegistryAuthError(`token request denied: ${err.message}`, { status: res.statusCode, cause: err });
    }
    if (res.statusCode !== 200) throw await statusError(method, res);
    const body = await readLimited(res, TOKEN_RESPONSE_LIMIT, what);
    let doc: { token?: unknown; access_token?: unknown; expires_in?: unknown };
    try {
      doc = JSON.parse(body.toString('utf8')) as typeof doc;
    } catch {
      throw new RegistryProtocolError(`${what}: token response is not JSON`);
    }
    const token = typeof doc.token === 'string' && doc.token !== '' ? doc.token : doc.access_token;
    if (typeof token !== 'string' || token === '') throw new RegistryProtocolError(`${what}: token response has no token`);
    const lifetimeS = typeof doc.expires_in === 'number' && doc.expires_in > 0 ? doc.expires_in : DEFAULT_TOKEN_LIFETIME_S;
    // Renew a little early so a token does not expire in flight: 10 % of its life, at most 10 s.
    const marginMs = Math.min(10_000, lifetimeS * 100);
    return { token, expiresAt: this.now() + lifetimeS * 1000 - marginMs };
  }
}
