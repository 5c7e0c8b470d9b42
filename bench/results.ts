/** The shape of one benchmark run's results (bench/run.ts writes it, bench/report.ts renders it). */
import type { MetricsOverhead } from './metrics-overhead';

export interface Machine {
  cpus: number;
  cpuModel: string;
  memoryBytes: number;
  kernel: string;
  node: string;
  containerd: string;
  runc: string;
  clipCommit: string;
}

export interface ImageInfo {
  /** Compressed bytes of the image's layers. */
  layerBytes: number;
  uncompressedBytes: number;
  layers: number;
  /**
   * What the container read as it started, from the start-up profiles clip recorded (Archive.startup_ranges,
   * 4 KiB blocks, the kernel's read-ahead included): uncompressed bytes, and those bytes gzip -6 compressed
   * as one stream (the least a lazy loader must move to start it).
   */
  startupRead?: { bytes: number; gzipBytes: number; ranges: number };
}

export interface ColdStartSample {
  pullMs: number;
  /** `ctr run` spawned -> first byte of the container's output. */
  firstOutputMs: number;
  /** `ctr run` spawned -> its exit (after `--rm` removed the container). */
  exitMs: number;
  /** pullMs + firstOutputMs. */
  totalMs: number;
  /** Blob body bytes the registry sent from the start of the pull to the container's exit. */
  registryBytes: number;
  /** FUSE mounts under clip's root after the pull (lazily served layers); 0 for overlayfs. */
  lazyLayers: number;
  /** Layers clip indexed itself ("indexing layer" in its log); 0 when every archive was found published. */
  indexedLayers?: number;
}

export interface ColdStartCase {
  profile: string;
  image: string;
  row: string;
  samples: ColdStartSample[];
  /** Set instead of samples when the row cannot run (e.g. a feature that does not exist yet). */
  unavailable?: string;
  error?: string;
}

export interface IndexingResult {
  layer: string;
  compressedMB: number;
  uncompressedMB: number;
  entries: number;
  gzipBestMBs: number;
  gzipMedianMBs: number;
  indexBestMBs: number;
  indexMedianMBs: number;
  ratioBest: number;
}

export interface SeqReadSample {
  cold: number;
  warm?: number;
  hot: number;
}

export interface SmallFilesSample {
  /** Mean µs per operation over the 10,000 files. */
  statCold: number;
  statCached: number;
  readCold: number;
  readCached: number;
}

export interface FuseResults {
  fileBytes: number;
  files: number;
  /** MB/s per run. */
  seq: { clip: SeqReadSample[]; overlayfs: SeqReadSample[] };
  small: { clip: SmallFilesSample[]; overlayfs: SmallFilesSample[] };
  error?: string;
}

export interface RssSample {
  idleBytes: number;
  bytes: number;
  mounts: number;
}

export interface Results {
  date: string;
  command: string;
  runs: number;
  machine: Machine;
  profiles: Record<string, string>;
  images: Record<string, ImageInfo>;
  clipConfig: string;
  publishedArchives: string;
  /** Seconds `clip index push` took per image. */
  publishSeconds?: Record<string, number>;
  coldStart: ColdStartCase[];
  indexing: IndexingResult[];
  indexingError?: string;
  fuse?: FuseResults;
  rss: Record<string, RssSample[]>;
  rssError?: string;
  /** FUSE request latency with metrics off and on (bench/metrics-overhead.ts). */
  metricsOverhead?: MetricsOverhead;
  metricsOverheadError?: string;
  durationS: number;
}
