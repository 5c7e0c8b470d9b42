/**
 * What the snapshotter remembers and reports about Prepare outcomes: a counter per outcome (metrics,
 * optional) and the latest fallback of each layer (reason, hint, image), for `clip status`. The fallback
 * list is bounded: the oldest entries go first.
 */
import type { FallbackReason } from './fallback-reason';

export type PrepareOutcome = 'remote' | 'fallback' | 'local';

/** What Prepare outcomes are counted with (src/metrics). */
export interface PrepareMetrics {
  prepared(outcome: PrepareOutcome, reason: FallbackReason | ''): void;
}

export interface LayerFallback {
  layerDigest: string;
  imageRef: string;
  reason: FallbackReason;
  hint?: string;
  /** Milliseconds since the epoch. */
  at: number;
}

const MAX_FALLBACKS = 512;

export class PrepareRecord {
  private readonly fallbacks = new Map<string, LayerFallback>();

  constructor(private readonly metrics?: PrepareMetrics) {}

  local(): void {
    this.metrics?.prepared('local', '');
  }

  remote(layerDigest: string | undefined): void {
    this.metrics?.prepared('remote', '');
    if (layerDigest) this.fallbacks.delete(layerDigest);
  }

  fallback(entry: LayerFallback): void {
    this.metrics?.prepared('fallback', entry.reason);
    this.fallbacks.delete(entry.layerDigest);
    this.fallbacks.set(entry.layerDigest, entry);
    for (const key of this.fallbacks.keys()) {
      if (this.fallbacks.size <= MAX_FALLBACKS) break;
      this.fallbacks.delete(key);
    }
  }

  /** The latest fallback of each layer that has not been served lazily since, oldest first. */
  recentFallbacks(): LayerFallback[] {
    return [...this.fallbacks.values()];
  }
}
