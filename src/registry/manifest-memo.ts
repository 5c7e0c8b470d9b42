/**
 * Manifests fetched by digest, remembered for a short while: a Prepare of each layer of an image resolves
 * the same manifest (the CRI labels name it by digest), so an image of N layers fetched it N times or
 * more. A manifest named by digest never changes, and its bytes were checked against the digest when
 * fetched. Kept per repository (a registry's authorisation is per repository: one repository's manifest is
 * not given out for another's), bounded in entries, bytes and age; concurrent fetches of one manifest
 * share one request.
 */
import type { FetchedManifest } from './registry-client';

export interface ManifestMemoLimits {
  maxEntries: number;
  /** A manifest larger than this is not remembered. */
  maxEntryBytes: number;
  maxBytes: number;
  maxAgeMs: number;
}

export const DEFAULT_MANIFEST_MEMO_LIMITS: ManifestMemoLimits = { maxEntries: 64, maxEntryBytes: 1 << 20, maxBytes: 8 << 20, maxAgeMs: 60_000 };

interface Entry {
  manifest: Promise<FetchedManifest>;
  bytes: number;
  at: number;
}

export class ManifestMemo {
  /** Oldest first. */
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;

  constructor(
    private readonly limits: ManifestMemoLimits = DEFAULT_MANIFEST_MEMO_LIMITS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The manifest `repository@digest`, from memory or from `fetch` (whose result is remembered if it succeeds). */
  get(repository: string, digest: string, fetch: () => Promise<FetchedManifest>): Promise<FetchedManifest> {
    const key = `${repository}@${digest}`;
    const known = this.entries.get(key);
    if (known && this.now() - known.at <= this.limits.maxAgeMs) return known.manifest;
    if (known) this.forget(key);
    const manifest = fetch();
    const entry: Entry = { manifest, bytes: 0, at: this.now() };
    this.entries.set(key, entry);
    manifest.then(
      (m) => {
        if (this.entries.get(key) !== entry) return;
        if (m.size > this.limits.maxEntryBytes) return this.forget(key);
        entry.bytes = m.size;
        this.bytes += m.size;
        this.trim();
      },
      () => {
        if (this.entries.get(key) === entry) this.forget(key);
      },
    );
    this.trim();
    return manifest;
  }

  get size(): number {
    return this.entries.size;
  }

  private forget(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    this.bytes -= entry.bytes;
  }

  private trim(): void {
    for (const key of this.entries.keys()) {
      if (this.entries.size <= this.limits.maxEntries && this.bytes <= this.limits.maxBytes) return;
      this.forget(key);
    }
  }
}
