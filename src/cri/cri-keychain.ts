/**
 * Credentials kubelet sent with CRI PullImage calls, kept in memory only (never logged, never written to
 * disk), keyed by image reference, and handed to clip's registry client for that image's repository.
 *
 * kubelet gives pull secrets only to the CRI image service, never to a snapshotter; clip's image-service
 * proxy (image-service-proxy.ts) sees them on their way to containerd and stores them here. A newer pull
 * of the same reference replaces them (registry tokens expire: the next pull brings fresh ones); removing
 * the image, by reference or by image id, forgets them.
 */
import { CredentialProvider, CredentialScope, RegistryCredentials, parseReference, registryKey } from '../registry';

interface Entry {
  /** Registry the reference names, Docker Hub aliases folded (registryKey). */
  registry: string;
  repository: string;
  credentials: RegistryCredentials;
  /** The image id containerd answered the pull with ("sha256:…"), once it has. */
  imageId?: string;
}

/** Most references kept; the oldest entry goes first beyond this (an image service nobody cleans up). */
const MAX_ENTRIES = 4096;

export class CriKeychain implements CredentialProvider {
  /** By normalised reference; Map order is insertion order, so the newest entry is the last. */
  private readonly entries = new Map<string, Entry>();

  /** The normalised form of a reference, or undefined for something that is not one (an image id). */
  static keyOf(ref: string): string | undefined {
    try {
      return parseReference(ref).toString();
    } catch {
      return undefined;
    }
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Stores the credentials of a pull of `ref` and returns a function that puts back what was there
   * before (for a pull that failed). Does nothing for an invalid reference.
   */
  remember(ref: string, credentials: RegistryCredentials): () => void {
    const key = CriKeychain.keyOf(ref);
    if (key === undefined) return () => {};
    const parsed = parseReference(ref);
    const previous = this.entries.get(key);
    this.entries.delete(key);
    this.entries.set(key, { registry: registryKey(parsed.domain), repository: parsed.path, credentials });
    if (this.entries.size > MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    return () => {
      this.entries.delete(key);
      if (previous) this.entries.set(key, previous);
    };
  }

  /** Records the image id a pull of `ref` produced, so RemoveImage by id forgets the credentials. */
  setImageId(ref: string, imageId: string): void {
    const entry = this.entries.get(CriKeychain.keyOf(ref) ?? '');
    if (entry) entry.imageId = imageId;
  }

  /** Forgets the credentials of an image removed by reference or by image id. */
  forget(refOrId: string): void {
    const key = CriKeychain.keyOf(refOrId);
    for (const [k, entry] of this.entries) {
      if (k === key || entry.imageId === refOrId) this.entries.delete(k);
    }
  }

  /** The newest credentials stored for an image of this registry host and repository. */
  async get(host: string, _signal?: AbortSignal, scope?: CredentialScope): Promise<RegistryCredentials | undefined> {
    if (scope?.repository === undefined) return undefined;
    const registry = registryKey(host);
    let found: RegistryCredentials | undefined;
    for (const entry of this.entries.values()) {
      if (entry.registry === registry && entry.repository === scope.repository) found = entry.credentials;
    }
    return found;
  }
}
