/**
 * Registry credentials from a CRI AuthConfig (runtime.v1), the way containerd's CRI reads it: `username`
 * and `password`, or `auth` (base64 of "username:password"), or an `identity_token` (an OAuth2 refresh
 * token) or a `registry_token` (a bearer token sent as is).
 */
import { AuthConfig } from '../generated/cri/runtime/v1/image-service';
import { RegistryCredentials, hasCredentials } from '../registry';

/** The credentials an AuthConfig carries, or undefined when it carries none. */
export function credentialsOf(auth: AuthConfig | undefined): RegistryCredentials | undefined {
  if (!auth) return undefined;
  const creds: RegistryCredentials = {};
  if (auth.username !== '' && auth.password !== '') {
    creds.username = auth.username;
    creds.password = auth.password;
  } else if (auth.auth !== '') {
    const decoded = Buffer.from(auth.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) {
      creds.username = decoded.slice(0, colon);
      creds.password = decoded.slice(colon + 1);
    }
  }
  if (auth.identityToken !== '') creds.identityToken = auth.identityToken;
  if (auth.registryToken !== '') creds.registryToken = auth.registryToken;
  return hasCredentials(creds) ? creds : undefined;
}
