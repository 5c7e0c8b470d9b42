/**
 * Pushing to a registry (OCI distribution spec, "Push"):
 *
 * * a blob: `HEAD /blobs/<digest>` first (a blob already there is not sent again), else
 *   `POST /blobs/uploads/` (202 and a `Location`), then one `PUT <Location>&digest=<digest>` with the
 *   whole blob: the monolithic upload every registry accepts;
 * * a manifest: `PUT /manifests/<tag or digest>` with its media type as Content-Type. A registry with the
 *   referrers API answers a manifest that has a `subject` with an `OCI-Subject` header.
 *
 * Requests ask for the `pull,push` scope and go to the first endpoint with the push capability. Timeouts,
 * retries and redirects are HttpTransport's; bodies are Buffers, so a retried request sends them again.
 */
import { computeDigest } from './digest';
import { RegistryEndpoint, endpointUrl, otherOriginTls } from './endpoint';
import { TransportResponse } from './http-transport';
import { redactUrl } from './logger';
import { discard } from './read-body';
import { ImageReference, parseReference } from './reference';
import { RegistryClient, RegistryConnection } from './registry-client';
import { DigestMismatchError, RegistryNotFoundError, RegistryProtocolError } from './registry-errors';
import { statusError } from './response-error';

export interface PushOptions {
  signal?: AbortSignal;
}

export interface PushedBlob {
  digest: string;
  size: number;
  /** True when the registry had the blob already and nothing was uploaded. */
  existed: boolean;
}

export interface PushedManifest {
  digest: string;
  size: number;
  /**
   * The `OCI-Subject` response header: the registry has recorded the manifest's subject (it implements the
   * referrers API). Undefined for registries without it, where the referrers tag schema must be updated.
   */
  subject?: string;
}

interface PushTarget {
  reference: ImageReference;
  connection: RegistryConnection;
  endpoint: RegistryEndpoint;
  scope: string;
}

async function pushTarget(client: RegistryClient, ref: ImageReference | string): Promise<PushTarget> {
  const reference = typeof ref === 'string' ? parseReference(ref) : ref;
  const connection = await client.connection(reference, ['push']);
  return { reference, connection, endpoint: connection.endpoints[0]!, scope: reference.scope('pull,push') };
}

function header(res: TransportResponse, name: string): string | undefined {
  const value = res.headers[name];
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

/** Checks a Docker-Content-Digest answer against the digest of what was sent. */
function checkDigestHeader(res: TransportResponse, digest: string, what: string): void {
  const claimed = header(res, 'docker-content-digest');
  if (claimed !== undefined && claimed !== digest) {
    throw new DigestMismatchError(`${what}: the registry stored ${claimed}, the content is ${digest}`);
  }
}

/** Uploads `data` as a blob of the reference's repository unless the registry has it already. */
export async function pushBlob(client: RegistryClient, ref: ImageReference | string, data: Buffer, options: PushOptions = {}): Promise<PushedBlob> {
  const { reference, connection, endpoint, scope } = await pushTarget(client, ref);
  const { http } = connection;
  const { signal } = options;
  const digest = computeDigest(data);
  const pushed = { digest, size: data.length };
  try {
    const head = await http.send({ method: 'HEAD', endpoint, url: endpointUrl(endpoint, reference.domain, reference.path, 'blobs', digest), scope, signal });
    discard(head.body);
    return { ...pushed, existed: true };
  } catch (err) {
    if (!(err instanceof RegistryNotFoundError)) throw err;
  }

  const startUrl = endpointUrl(endpoint, reference.domain, reference.path, 'blobs', 'uploads/');
  const start = await http.send({ method: 'POST', endpoint, url: startUrl, scope, body: Buffer.alloc(0), signal });
  discard(start.body);
  const location = header(start, 'location');
  if (start.statusCode !== 202 || location === undefined) {
    throw new RegistryProtocolError(`POST ${redactUrl(startUrl)}: HTTP ${start.statusCode}${location ? '' : ' without a Location'}, expected 202 with one`);
  }
  // The session's own query (distribution's _state) is kept as the registry wrote it.
  const uploadUrl = new URL(`${location}${location.includes('?') ? '&' : '?'}digest=${encodeURIComponent(digest)}`, start.url);
  const what = `PUT ${redactUrl(uploadUrl)}`;
  let res: TransportResponse;
  if (uploadUrl.origin === start.url.origin) {
    res = await http.send({ method: 'PUT', endpoint, url: uploadUrl, scope, body: data, contentType: 'application/octet-stream', signal });
  } else {
    // An upload service on another origin gets no registry credentials (like a blob redirect).
    const tls = otherOriginTls(endpoint.tls);
    res = await http.transport.send({ method: 'PUT', url: uploadUrl, headers: { 'content-type': 'application/octet-stream' }, body: data, signal, tls });
    if (res.statusCode >= 400) throw await statusError('PUT', res);
  }
  discard(res.body);
  if (res.statusCode !== 201 && res.statusCode !== 204) throw new RegistryProtocolError(`${what}: HTTP ${res.statusCode}, expected 201`);
  checkDigestHeader(res, digest, `blob ${digest}`);
  connection.logger.debug(`pushed blob ${digest} (${data.length} bytes) to ${reference.name}`);
  return { ...pushed, existed: false };
}

/**
 * Puts a manifest (or index) into the reference's repository under `tag`, or under its digest when no tag
 * is given.
 */
export async function pushManifest(
  client: RegistryClient,
  ref: ImageReference | string,
  body: Buffer,
  mediaType: string,
  options: PushOptions & { tag?: string } = {},
): Promise<PushedManifest> {
  const { reference, connection, endpoint, scope } = await pushTarget(client, ref);
  const digest = computeDigest(body);
  const url = endpointUrl(endpoint, reference.domain, reference.path, 'manifests', options.tag ?? digest);
  const res = await connection.http.send({ method: 'PUT', endpoint, url, scope, body, contentType: mediaType, signal: options.signal });
  discard(res.body);
  if (res.statusCode !== 201 && res.statusCode !== 200) throw new RegistryProtocolError(`PUT ${redactUrl(url)}: HTTP ${res.statusCode}, expected 201`);
  checkDigestHeader(res, digest, `manifest ${reference.name}@${options.tag ?? digest}`);
  connection.logger.debug(`pushed manifest ${digest} to ${reference.name}${options.tag ? `:${options.tag}` : ''}`);
  return { digest, size: body.length, subject: header(res, 'oci-subject') };
}
