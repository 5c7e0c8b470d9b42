/**
 * Answers registry authentication challenges and remembers the answers.
 *
 * The first request to a host goes out anonymously. On a 401 the registry layer hands the
 * `WWW-Authenticate` challenges here: a Bearer challenge gets a token from its realm (token-fetcher.ts),
 * a Basic challenge is answered with the username and password for the host and repository. The
 * challenge is remembered per registry origin (scheme, host and port), so later requests are authorized up
 * front; bearer tokens are cached per (origin, scope) until they expire, Basic headers per (origin,
 * repository), and concurrent requests for the same token share one fetch. Credentials are looked up by
 * host and repository, and asked for again after a refusal, so credentials replaced at their source (a
 * newer CRI pull, an edited config) are used without a restart. A Bearer challenge's realm must pass tokenRealm (https for an
 * https registry) before anything is sent to it.
 */
import { CredentialProvider, CredentialScope, RegistryCredentials } from './credentials';
import { RegistryEndpoint, otherOriginTls } from './endpoint';
import { RegistryAuthError } from './registry-errors';
import { untilAborted } from './retry-policy';
import { BearerToken, TokenFetcher, basicAuthorization, tokenRealm } from './token-fetcher';
import { AuthChallenge } from './www-authenticate';

/** The repository a token scope (`repository:NAME:ACTIONS`) names, for the credential provider. */
function scopeOf(scope: string): CredentialScope {
  const m = /^repository:(.+):[a-z,*]+$/.exec(scope);
  return m ? { repository: m[1] } : {};
}

export interface AuthorizerOptions {
  credentials?: CredentialProvider;
  now?: () => number;
}

export class Authorizer {
  private readonly challenges = new Map<string, AuthChallenge>();
  private readonly basic = new Map<string, string>();
  private readonly tokens = new Map<string, BearerToken>();
  private readonly pending = new Map<string, Promise<BearerToken>>();
  private readonly now: () => number;

  constructor(
    private readonly fetcher: TokenFetcher,
    private readonly options: AuthorizerOptions = {},
  ) {
    this.now = options.now ?? Date.now;
  }

  /** The Authorization header to send up front to `endpoint` for `scope`, if it is known to want one. */
  async authorization(endpoint: RegistryEndpoint, scope: string, signal?: AbortSignal): Promise<string | undefined> {
    const challenge = this.challenges.get(endpoint.apiRoot.origin);
    return challenge ? this.authorize(endpoint, challenge, scope, signal) : undefined;
  }

  /**
   * Handles a 401 from `endpoint`: picks the challenge to answer, forgets the token that
   * was just refused, and returns the header to retry with. Throws RegistryAuthError when it cannot answer.
   */
  async answer(endpoint: RegistryEndpoint, challenges: readonly AuthChallenge[], scope: string, refused: string | undefined, signal?: AbortSignal): Promise<string> {
    const registry = endpoint.apiRoot;
    const host = registry.host;
    const challenge =
      challenges.find((c) => c.scheme === 'bearer' && c.params['realm']) ?? challenges.find((c) => c.scheme === 'basic');
    if (!challenge) {
      const schemes = challenges.map((c) => c.scheme).join(', ') || 'none';
      throw new RegistryAuthError(`${host}: HTTP 401 with no usable WWW-Authenticate challenge (schemes: ${schemes})`, { status: 401 });
    }
    this.tokens.delete(this.tokenKey(registry, scope));
    this.basic.delete(this.basicKey(registry, scope));
    this.challenges.set(registry.origin, challenge);
    const header = await this.authorize(endpoint, challenge, scope, signal);
    if (refused !== undefined && challenge.scheme === 'basic' && header === refused) {
      throw new RegistryAuthError(`${host}: the registry refused the configured username and password`, { status: 401 });
    }
    return header;
  }

  private tokenKey(registry: URL, scope: string): string {
    return `${registry.origin} ${scope}`;
  }

  private basicKey(registry: URL, scope: string): string {
    return `${registry.origin} ${scopeOf(scope).repository ?? ''}`;
  }

  private async credentials(host: string, scope: string, signal?: AbortSignal): Promise<RegistryCredentials | undefined> {
    return this.options.credentials?.get(host, signal, scopeOf(scope));
  }

  private async authorize(endpoint: RegistryEndpoint, challenge: AuthChallenge, scope: string, signal?: AbortSignal): Promise<string> {
    const registry = endpoint.apiRoot;
    const host = registry.host;
    if (challenge.scheme === 'basic') {
      const key = this.basicKey(registry, scope);
      const known = this.basic.get(key);
      if (known !== undefined) return known;
      const creds = await this.credentials(host, scope, signal);
      if (!creds?.username || !creds.password) {
        throw new RegistryAuthError(`${host} requires basic authentication and no username and password are configured for it`, { status: 401 });
      }
      const header = basicAuthorization(creds.username, creds.password);
      this.basic.set(key, header);
      return header;
    }
    const key = this.tokenKey(registry, scope);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > this.now()) return `Bearer ${cached.token}`;
    let pending = this.pending.get(key);
    if (!pending) {
      // Shared by every request waiting for this token, so it is not tied to one caller's signal;
      // the transport's timeouts and retries bound it.
      pending = this.fetchToken(endpoint, challenge, scope).finally(() => this.pending.delete(key));
      this.pending.set(key, pending);
    }
    const token = await untilAborted(pending, signal);
    this.tokens.set(key, token);
    return `Bearer ${token.token}`;
  }

  /**
   * Asks the challenge's realm for a token. The endpoint's extra CA certificates are trusted for the realm
   * too; its skip_verify and client certificates only when the realm is on the endpoint's own origin.
   */
  private async fetchToken(endpoint: RegistryEndpoint, challenge: AuthChallenge, scope: string): Promise<BearerToken> {
    const registry = endpoint.apiRoot;
    const realm = tokenRealm(challenge.params['realm'], registry);
    const creds = await this.credentials(registry.host, scope);
    if (creds?.registryToken) return { token: creds.registryToken, expiresAt: Number.POSITIVE_INFINITY };
    const scopes = new Set([scope, ...(challenge.params['scope'] ?? '').split(' ').filter((s) => s !== '')]);
    const own = realm.origin === registry.origin;
    return this.fetcher.fetch({
      realm,
      service: challenge.params['service'],
      scopes: [...scopes].sort(),
      credentials: creds,
      skipVerify: own && endpoint.skipVerify,
      tls: own ? endpoint.tls : otherOriginTls(endpoint.tls),
    });
  }
}
