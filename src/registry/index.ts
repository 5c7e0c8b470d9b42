/**
 * clip's registry client: image references, containerd hosts.toml configuration, docker config.json
 * credentials, token auth, manifests with platform selection, blobs read by range, pushes and referrers.
 */
export { RegistryClient, MAX_MANIFEST_BYTES } from './registry-client';
export type { FetchedManifest, RegistryClientOptions, ResolveOptions, ResolvedImage } from './registry-client';
export { pushBlob, pushManifest } from './push';
export type { PushOptions, PushedBlob, PushedManifest } from './push';
export { addToReferrersTag, listReferrers, referrersTag } from './referrers';
export type { Referrer, ReferrersList, ReferrersOptions } from './referrers';
export { RemoteBlob, parseContentRange } from './remote-blob';
export type { BlobReadOptions, ContentRange } from './remote-blob';

export { ImageReference, parseReference, DOCKER_HUB_DOMAIN, DEFAULT_TAG } from './reference';
export { computeDigest, validateDigest, verifyDigest } from './digest';
export { MediaTypes, MANIFEST_ACCEPT } from './media-types';
export { parseManifest } from './manifest';
export type { Descriptor, ImageIndex, ImageManifest, ParsedManifest } from './manifest';
export { parseImageConfig } from './image-config';
export type { ImageConfig } from './image-config';
export { formatPlatform, hostPlatform, normalizePlatform, parsePlatform, platformRank, selectPlatformEntry } from './platform';
export type { Platform, PlatformEntry } from './platform';

export { RegistryHosts } from './registry-hosts';
export type { RegistryHostsOptions } from './registry-hosts';
export { endpointsFor, parseHostsFile } from './hosts-file';
export type { EndpointOptions, HostsFile } from './hosts-file';
export { ALL_CAPABILITIES, DOCKER_HUB_API_HOST, defaultEndpoint, endpointUrl } from './endpoint';
export type { EndpointTls, HostCapability, RegistryEndpoint, TlsFiles } from './endpoint';

export { DockerCredentials, registryKey } from './docker-config';
export type { DockerCredentialsOptions } from './docker-config';
export { CredentialChain, hasCredentials } from './credentials';
export type { CredentialProvider, CredentialScope, RegistryCredentials } from './credentials';
export { parseWwwAuthenticate } from './www-authenticate';
export type { AuthChallenge } from './www-authenticate';

export { DEFAULT_TIMEOUTS } from './http-transport';
export type { Timeouts } from './http-transport';
export { DEFAULT_RETRY_POLICY } from './retry-policy';
export type { RetryPolicy } from './retry-policy';
export { redactUrl, silentLogger } from './logger';
export type { RegistryLogger } from './logger';
export {
  DigestMismatchError,
  NoMatchingPlatformError,
  RegistryAuthError,
  RegistryNotFoundError,
  RegistryProtocolError,
  RegistryRequestError,
  UnsupportedManifestError,
} from './registry-errors';
