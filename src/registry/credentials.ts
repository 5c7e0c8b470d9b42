/**
 * Registry credentials and the seam that provides them. The client asks per registry host (the
 * endpoint's `host[:port]`) and repository only when it has to authenticate; where credentials come from
 * is the caller's choice (docker-config.ts reads docker's config.json format, src/cri keeps those kubelet
 * sent with a CRI pull). CredentialChain asks several sources in order.
 *
 * Secrets in here must never reach a log line or an error message.
 */
export interface RegistryCredentials {
  username?: string;
  password?: string;
  /** OAuth2 refresh token (config.json `identitytoken`), exchanged with a POST to the token realm. */
  identityToken?: string;
  /** A bearer token sent as is (config.json `registrytoken`). */
  registryToken?: string;
}

/** What the credentials are for, beyond the host. */
export interface CredentialScope {
  /** Repository path inside the registry (`library/busybox`), when the request names one. */
  repository?: string;
}

export interface CredentialProvider {
  get(host: string, signal?: AbortSignal, scope?: CredentialScope): Promise<RegistryCredentials | undefined>;
}

/** Asks each provider in order; the first that has credentials for the host and scope answers. */
export class CredentialChain implements CredentialProvider {
  private readonly providers: readonly CredentialProvider[];

  constructor(...providers: (CredentialProvider | undefined)[]) {
    this.providers = providers.filter((p): p is CredentialProvider => p !== undefined);
  }

  async get(host: string, signal?: AbortSignal, scope?: CredentialScope): Promise<RegistryCredentials | undefined> {
    for (const provider of this.providers) {
      const found = await provider.get(host, signal, scope);
      if (hasCredentials(found)) return found;
    }
    return undefined;
  }
}

/** True when there is something to authenticate with. */
export function hasCredentials(c: RegistryCredentials | undefined): c is RegistryCredentials {
  return !!c && !!((c.username && c.password) || c.identityToken || c.registryToken);
}
