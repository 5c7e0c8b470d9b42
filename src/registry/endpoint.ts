/**
 * A registry endpoint: one base URL requests for a registry domain can go to (a mirror or the
 * server itself), with what it may be used for and how to talk to it. Produced by the hosts
 * configuration (hosts-file.ts), consumed by the client.
 */
import { DOCKER_HUB_DOMAIN } from './reference';

export type HostCapability = 'pull' | 'resolve' | 'push';
export const ALL_CAPABILITIES: readonly HostCapability[] = ['pull', 'resolve', 'push'];

export const DOCKER_HUB_API_HOST = 'registry-1.docker.io';

/** hosts.toml `ca` and `client`: absolute paths of PEM files. */
export interface TlsFiles {
  ca: string[];
  /** A client certificate chain and its key; without `key` the key is in the certificate's file. */
  client: Array<{ cert: string; key?: string }>;
}

/** What TlsFiles hold, read and checked (host-tls.ts). */
export interface EndpointTls {
  /** Extra CA certificates (PEM) trusted in addition to the default roots. */
  ca: readonly string[];
  /** Client certificate chains (PEM) with their private keys (PEM), offered when the server asks. */
  clientCertificates: ReadonlyArray<{ cert: string; key: string }>;
}

/** The part of an endpoint's TLS settings that applies to other origins (redirects, realms, upload services). */
export function otherOriginTls(tls: EndpointTls | undefined): EndpointTls | undefined {
  return tls && { ca: tls.ca, clientCertificates: [] };
}

export interface RegistryEndpoint {
  /** API root without a trailing slash, normally `<scheme>://<host>/v2`; requests append `/<repo>/...`. */
  apiRoot: URL;
  capabilities: readonly HostCapability[];
  /** Do not verify the server's TLS certificate (hosts.toml `skip_verify`). */
  skipVerify: boolean;
  /** Extra headers sent to this endpoint only (hosts.toml `[header]`). */
  headers: Readonly<Record<string, readonly string[]>>;
  /** True for a `[host."…"]` entry, false for the registry's own server. */
  mirror: boolean;
  /** hosts.toml `ca` and `client` files, as configured. */
  tlsFiles?: TlsFiles;
  /** The contents of tlsFiles, loaded by RegistryHosts. */
  tls?: EndpointTls;
}

/** The server a domain's API lives on when nothing is configured: docker.io → registry-1.docker.io. */
export function defaultServerUrl(domain: string, plainHttp: boolean): URL {
  if (domain === DOCKER_HUB_DOMAIN) return new URL(`https://${DOCKER_HUB_API_HOST}`);
  return new URL(`${plainHttp ? 'http' : 'https'}://${domain}`);
}

/** The endpoint containerd uses when there is no hosts.toml for a domain. */
export function defaultEndpoint(domain: string, plainHttp: boolean): RegistryEndpoint {
  return {
    apiRoot: new URL('/v2', defaultServerUrl(domain, plainHttp)),
    capabilities: ALL_CAPABILITIES,
    skipVerify: false,
    headers: {},
    mirror: false,
  };
}

/**
 * URL of `/<repo>/<kind>/<object>` under an endpoint (`blobs/uploads/` is kind `blobs`, object `uploads/`);
 * mirrors also get `?ns=<domain>` like containerd sends.
 */
export function endpointUrl(endpoint: RegistryEndpoint, domain: string, repo: string, kind: 'manifests' | 'blobs' | 'referrers', object: string): URL {
  const url = new URL(endpoint.apiRoot.href);
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/${repo}/${kind}/${object}`;
  if (endpoint.mirror && endpoint.apiRoot.host !== domain) url.searchParams.set('ns', domain);
  return url;
}
