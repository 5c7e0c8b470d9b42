/**
 * Registry credentials and the seam that provides them. The client asks per registry host (the
 * endpoint's `host[:port]`) only when it has to authenticate; where credentials come from is the
 * caller's choice (docker-config.ts reads docker's config.json format).
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

export interface CredentialProvider {
  get(host: string, signal?: AbortSignal): Promise<RegistryCredentials | undefined>;
}

/** True when there is something to authenticate with. */
export function hasCredentials(c: RegistryCredentials | undefined): c is RegistryCredentials {
  return !!c && !!((c.username && c.password) || c.identityToken || c.registryToken);
}
