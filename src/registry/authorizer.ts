/**
 * Answers registry authentication challenges and remembers the answers.
 *
 * The first request to a host goes out anonymously. On a 401 the registry layer hands the
 * `WWW-Authenticate` challenges here: a Bearer challenge gets a token from its realm (token-fetcher.ts),
 * a Basic challenge is answered with the username and password for the host and repository. The
 * challenge is remembered per host, so later requests are authorized up front; bearer tokens are cached
 * per (host, scope) until they expire, Basic headers per (host, repository), and concurrent requests for
 * the same token share one fetch. Credentials are asked for again after a refusal, so credentials
 * replaced at their source (a newer CRI pull, an edited config) are used without a restart.
 */
import { CredentialProvider, CredentialScope, RegistryCredentials } from './credentials';
import { RegistryAuthError } from './registry-errors';
import { abortReason } from './retry-policy';
import { BearerToken, TokenFetcher, basicAuthorization } from './token-fetcher';
import { AuthChallenge } from './www-authenticate';

/** The repository a token scope (`repository:NAME:ACTIONS`) names, for the credential provider. */
function scopeOf(scope: string): CredentialScope {
  const m = /^repository:(.+):[a-z,*]+$/.exec(scope);
  return m ? { repository: m[1] } : {};
}

/** `promise`, or the signal's reason as soon as it aborts. */
function untilAborted<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(abortReason(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortReason(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
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

  /** The Authorization header to send up front to `host` for `scope`, if the host is known to want one. */
  async authorization(host: string, scope: string, signal?: AbortSignal): Promise<string | undefined> {
    const challenge = this.challenges.get(host);
    return challenge ? this.authorize(host, challenge, scope, signal) : undefined;
  }

  /**
   * Handles a 401 from `host`: picks the challenge to answer, forgets the token that was just
   * refused, and returns the header to retry with. Throws RegistryAuthError when it cannot answer.
   */
  async answer(host: string, challenges: readonly AuthChallenge[], scope: string, refused: string | undefined, signal?: AbortSignal): Promise<string> {
    const challenge =
      challenges.find((c) => c.scheme === 'bearer' && c.params['realm']) ?? challenges.find((c) => c.scheme === 'basic');
    if (!challenge) {
      const schemes = challenges.map((c) => c.scheme).join(', ') || 'none';
      throw new RegistryAuthError(`${host}: HTTP 401 with no usable WWW-Authenticate challenge (schemes: ${schemes})`, { status: 401 });
    }
    this.tokens.delete(this.tokenKey(host, scope));
    this.basic.delete(this.basicKey(host, scope));
    this.challenges.set(host, challenge);
    const header = await this.authorize(host, challenge, scope, signal);
    if (refused !== undefined && challenge.scheme === 'basic' && header === refused) {
      throw new RegistryAuthError(`${host}: the registry refused the configured username and password`, { status: 401 });
    }
    return header;
  }

  private tokenKey(host: string, scope: string): string {
    return `${host} ${scope}`;
  }

  private basicKey(host: string, scope: string): string {
    return `${host} ${scopeOf(scope).repository ?? ''}`;
  }

  private async credentials(host: string, scope: string, signal?: AbortSignal): Promise<RegistryCredentials | undefined> {
    return this.options.credentials?.get(host, signal, scopeOf(scope));
  }

  private async authorize(host: string, challenge: AuthChallenge, scope: string, signal?: AbortSignal): Promise<string> {
    if (challenge.scheme === 'basic') {
      const key = this.basicKey(host, scope);
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
    const key = this.tokenKey(host, scope);
    const cached = this.tokens.get(key);
    if (cached && cached.expiresAt > this.now()) return `Bearer ${cached.token}`;
    let pending = this.pending.get(key);
    if (!pending) {
      // Shared by every request waiting for this token, so it is not tied to one caller's signal;
      // the transport's timeouts and retries bound it.
      pending = this.fetchToken(host, challenge, scope).finally(() => this.pending.delete(key));
      this.pending.set(key, pending);
    }
    const token = await untilAborted(pending, signal);
    this.tokens.set(key, token);
    return `Bearer ${token.token}`;
  }

  private async fetchToken(host: string, challenge: AuthChallenge, scope: string): Promise<BearerToken> {
    const creds = await this.credentials(host, scope);
    if (creds?.registryToken) return { token: creds.registryToken, expiresAt: Number.POSITIVE_INFINITY };
    let realm: URL;
    try {
      realm = new URL(challenge.params['realm']!);
      if (realm.protocol !== 'https:' && realm.protocol !== 'http:') throw new Error('unsupported scheme');
    } catch (err) {
      throw new RegistryAuthError(`${host}: the registry's token realm is not an http(s) URL`, { status: 401, cause: err });
    }
    const scopes = new Set([scope, ...(challenge.params['scope'] ?? '').split(' ').filter((s) => s !== '')]);
    return this.fetcher.fetch({ realm, service: challenge.params['service'], scopes: [...scopes].sort(), credentials: creds });
  }
}
