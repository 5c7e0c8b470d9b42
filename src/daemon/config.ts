/**
 * The daemon's configuration: defaults, the TOML file (--config) and command-line overrides, merged and
 * validated in one place. Nothing else in clip reads configuration files or the environment.
 *
 * Every setting is declared once in SETTINGS (its TOML name, type and default); config/clip.toml
 * documents them for operators.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { DEFAULT_ARCHIVE_LIMITS, DEFAULT_PUBLISHED_ARCHIVE_BYTES } from '../archive/limits';
import { ConfigError, InvalidArgumentError, errorMessage } from '../errors';
import { DEFAULT_INDEX_LIMITS } from '../indexer/index-limits';
import { parseListenAddress } from '../metrics/listen-address';
import { locateKey, nearestName } from './config-keys';

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['text', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface DaemonConfig {
  /** Directory holding clip's metadata, snapshots, clip archives and content cache. */
  root: string;
  /** Unix socket path containerd connects to. */
  address: string;
  logLevel: LogLevel;
  /** Log lines as text or as JSON objects. */
  logFormat: LogFormat;
  lazy: {
    /** Serve layers lazily when containerd's CRI labels allow it. */
    enabled: boolean;
    /** Uncompressed bytes between two gzip checkpoints (one range request fetches one span). */
    spanSize: number;
    /** Fill the rest of each mounted layer into the content cache in the background. */
    backgroundFetch: boolean;
    /** Keep the bytes streamed while indexing a layer in the content cache. */
    cacheWhileIndexing: boolean;
    /** When one layer of an image is prepared, index the image's other layers in parallel. */
    prefetchImageLayers: boolean;
    /** Layers indexed at the same time. */
    indexConcurrency: number;
    /** Upper bound of the clip archive store in bytes; least recently used archives go first. */
    archiveStoreMaxBytes: number;
    /** A FUSE read that waits longer than this for the registry fails with EIO. */
    readTimeoutMs: number;
    /** Look for clip archives published in the registry (clip index push) before indexing a layer. */
    publishedArchives: boolean;
    /** PEM ed25519 public keys whose signatures make a published archive trusted (docs/security.md). */
    trustedKeys: string[];
    /** Repositories whose published archives are trusted without a signature ("host/path" or "host/path/*"). */
    trustedRepositories: string[];
    /** "background": check each published archive against its layer's real bytes once mounted. */
    verifyPublished: 'off' | 'background';
    /** Record which spans containers read as they start, and load a recorded profile's spans at mount. */
    startupProfiles: boolean;
    /** Fetch the start-up bundle of a trusted published archive with one request and answer start-up reads from it. */
    startupBundles: boolean;
    /**
     * Publish the archives of layers this node indexed (and later their start-up profiles) in the image's
     * repository, signed with publishKey, so that nodes trusting that key need not index them.
     */
    autoPublish: boolean;
    /** PEM ed25519 private key auto-published archives are signed with; required with autoPublish. */
    publishKey: string;
    /**
     * Keep layer mounts served across restarts, crashes and upgrades of clip: their FUSE connections are
     * handed to the next clip process (systemd's fd store, or clip-fd-holder).
     */
    liveRestart: boolean;
    /**
     * With clip-fd-holder: how long kept connections wait for a clip process once the last one exited;
     * then the holder closes them and their readers get an error instead of waiting (0: forever).
     */
    liveRestartTimeoutMs: number;
    /**
     * containerd's socket, read to find the layer of an unpack that names only its chain ID (nerdctl's
     * pull, CRI without snapshot annotations); '' to let containerd unpack such layers.
     */
    containerdAddress: string;
  };
  registry: {
    /**
     * containerd-style hosts directories (mirrors, plain http), searched in order like containerd 2.x's
     * `config_path`: the first with an entry for a host wins. Empty for none.
     */
    hostsDirs: string[];
    /** docker config.json with registry credentials, or '' for none. */
    dockerConfig: string;
    /** Reach registries without a hosts.toml entry over plain http (like `ctr --plain-http`; never docker.io). */
    plainHttp: boolean;
    /** Time limit of one registry request attempt with a small response; the base of a blob transfer's deadline. */
    requestTimeoutMs: number;
    /** Slowest blob transfer (bytes per second, judged over transferWindowMs of waiting) before an attempt is cut off. */
    minTransferRate: number;
    /** Window over which minTransferRate is judged. */
    transferWindowMs: number;
    /** Retries of a failed registry request (with back-off). */
    retries: number;
  };
  /** Limits on every layer and archive clip reads (docs/limits.md); see IndexLimits and ArchiveLimits. */
  limits: {
    /** Largest clip archive file decoded (the archive store's files). */
    maxArchiveBytes: number;
    /** Largest archive taken from a registry (published archives). */
    maxPublishedArchiveBytes: number;
    /** Largest inflated start-up bundle an archive may declare. */
    maxStartupBundleBytes: number;
    maxEntries: number;
    maxPathBytes: number;
    maxNameBytes: number;
    maxMetadataBytes: number;
    maxPaxBytes: number;
    maxCheckpoints: number;
    maxSpanBytes: number;
    maxLayerBytes: number;
    maxZstdRatio: number;
    zstdRatioGraceBytes: number;
  };
  /** The content cache of verified spans (<root>/cache; docs/cache.md). */
  cache: {
    /** Upper bound of the content cache: bytes, or a share of the cache's filesystem. */
    maxSize: DiskShare;
    /** Free space kept on the cache's filesystem: below it, background fetching and cache-while-indexing stop. */
    minFree: DiskShare;
    /** Layers no snapshot references are removed from the cache after this long. */
    gcGraceMs: number;
  };
  criKeychain: {
    /** Serve a CRI image service that forwards to containerd's and keeps each pull's credentials in memory. */
    enabled: boolean;
    /** Unix socket of that image service (kubelet's --image-service-endpoint). */
    imageServicePath: string;
    /** containerd's socket, which serves the CRI image service the calls are forwarded to. */
    containerdImageService: string;
  };
  metrics: {
    /**
     * Where /metrics is served: "" (off), "host:port", or an absolute unix socket path (created 0600).
     * The FUSE servers keep their statistics only while it is on.
     */
    address: string;
  };
}

const MIB = 1024 * 1024;

/**
 * The admin socket (GET /status, `clip status`) of a daemon serving containerd on `address`: beside it,
 * "<address>.admin", mode 0600 like it.
 */
export function adminSocketPath(address: string): string {
  return `${address}.admin`;
}

/** A size on a filesystem: a number of bytes, or a percentage of the filesystem's size ("20%"). */
export type DiskShare = { bytes: number } | { percent: number };

/** The config file `clip serve` reads when --config is not given, if it exists. */
export const DEFAULT_CONFIG_FILE = '/etc/clip/clip.toml';

/** What a service manager (systemd) tells the daemon through its environment. */
export interface ServiceEnvironment {
  /** $NOTIFY_SOCKET: where READY=1 and stored fds go (sd_notify(3)). */
  notifySocket?: string;
  /** Fds passed to this process ($LISTEN_FDS from fd 3, $LISTEN_FDNAMES), when $LISTEN_PID is this process. */
  passedFds: Array<{ name: string; fd: number }>;
}

/** Reads the service manager's variables (sd_listen_fds(3), sd_notify(3)) from an environment. */
export function serviceEnvironment(env: NodeJS.ProcessEnv, pid: number): ServiceEnvironment {
  const count = Number(env.LISTEN_FDS ?? '0');
  const ours = Number(env.LISTEN_PID) === pid && Number.isSafeInteger(count) && count > 0;
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  return {
    notifySocket: env.NOTIFY_SOCKET || undefined,
    passedFds: ours ? Array.from({ length: count }, (_, i) => ({ fd: 3 + i, name: names[i] ?? 'unknown' })) : [],
  };
}

export const DEFAULT_CONFIG: DaemonConfig = {
  root: '/var/lib/clip',
  address: '/run/clip/clip.sock',
  logLevel: 'info',
  logFormat: 'text',
  lazy: {
    enabled: true,
    spanSize: 4 * MIB,
    backgroundFetch: true,
    cacheWhileIndexing: true,
    prefetchImageLayers: true,
    indexConcurrency: 3,
    archiveStoreMaxBytes: 1024 * MIB,
    readTimeoutMs: 30_000,
    publishedArchives: true,
    trustedKeys: [],
    trustedRepositories: [],
    verifyPublished: 'off',
    startupProfiles: true,
    autoPublish: false,
    publishKey: '',
    startupBundles: true,
    liveRestart: true,
    liveRestartTimeoutMs: 300_000,
    containerdAddress: '/run/containerd/containerd.sock',
  },
  registry: {
    hostsDirs: ['/etc/containerd/certs.d', '/etc/docker/certs.d'],
    dockerConfig: '/root/.docker/config.json',
    plainHttp: false,
    requestTimeoutMs: 30_000,
    minTransferRate: 32 * 1024,
    transferWindowMs: 30_000,
    retries: 3,
  },
  limits: {
    maxArchiveBytes: DEFAULT_ARCHIVE_LIMITS.maxBytes,
    maxPublishedArchiveBytes: DEFAULT_PUBLISHED_ARCHIVE_BYTES,
    maxStartupBundleBytes: DEFAULT_ARCHIVE_LIMITS.maxStartupBundleBytes,
    maxEntries: DEFAULT_INDEX_LIMITS.maxEntries,
    maxPathBytes: DEFAULT_INDEX_LIMITS.maxPathBytes,
    maxNameBytes: DEFAULT_INDEX_LIMITS.maxNameBytes,
    maxMetadataBytes: DEFAULT_INDEX_LIMITS.maxMetadataBytes,
    maxPaxBytes: DEFAULT_INDEX_LIMITS.maxPaxBytes,
    maxCheckpoints: DEFAULT_INDEX_LIMITS.maxCheckpoints,
    maxSpanBytes: DEFAULT_INDEX_LIMITS.maxSpanBytes,
    maxLayerBytes: DEFAULT_INDEX_LIMITS.maxLayerBytes,
    maxZstdRatio: DEFAULT_INDEX_LIMITS.maxZstdRatio,
    zstdRatioGraceBytes: DEFAULT_INDEX_LIMITS.zstdRatioGraceBytes,
  },
  cache: {
    maxSize: { percent: 20 },
    minFree: { percent: 20 },
    gcGraceMs: 3_600_000,
  },
  criKeychain: {
    enabled: false,
    imageServicePath: '/run/clip/cri.sock',
    containerdImageService: '/run/containerd/containerd.sock',
  },
  metrics: {
    address: '',
  },
};

type Kind =
  | 'string'
  | 'path'
  | 'optional-path'
  | 'path-list'
  | 'string-list'
  | 'boolean'
  | 'count'
  | 'limit'
  | 'bytes'
  | 'seconds'
  | 'duration'
  | 'disk-share'
  | 'log-level'
  | 'log-format'
  | 'verify-mode'
  | 'listen-address';

interface Setting {
  /** Dotted TOML name, e.g. "lazy.span_size". */
  toml: string;
  /** Dotted field in DaemonConfig, e.g. "lazy.spanSize". */
  field: string;
  kind: Kind;
}

const SETTINGS: Setting[] = [
  { toml: 'root', field: 'root', kind: 'path' },
  { toml: 'address', field: 'address', kind: 'path' },
  { toml: 'log_level', field: 'logLevel', kind: 'log-level' },
  { toml: 'log_format', field: 'logFormat', kind: 'log-format' },
  { toml: 'lazy.enabled', field: 'lazy.enabled', kind: 'boolean' },
  { toml: 'lazy.span_size', field: 'lazy.spanSize', kind: 'bytes' },
  { toml: 'lazy.background_fetch', field: 'lazy.backgroundFetch', kind: 'boolean' },
  { toml: 'lazy.cache_while_indexing', field: 'lazy.cacheWhileIndexing', kind: 'boolean' },
  { toml: 'lazy.prefetch_image_layers', field: 'lazy.prefetchImageLayers', kind: 'boolean' },
  { toml: 'lazy.index_concurrency', field: 'lazy.indexConcurrency', kind: 'count' },
  { toml: 'lazy.archive_store_max_size', field: 'lazy.archiveStoreMaxBytes', kind: 'bytes' },
  { toml: 'lazy.read_timeout_seconds', field: 'lazy.readTimeoutMs', kind: 'seconds' },
  { toml: 'lazy.published_archives', field: 'lazy.publishedArchives', kind: 'boolean' },
  { toml: 'lazy.trusted_keys', field: 'lazy.trustedKeys', kind: 'path-list' },
  { toml: 'lazy.trusted_repositories', field: 'lazy.trustedRepositories', kind: 'string-list' },
  { toml: 'lazy.verify_published', field: 'lazy.verifyPublished', kind: 'verify-mode' },
  { toml: 'lazy.startup_profiles', field: 'lazy.startupProfiles', kind: 'boolean' },
  { toml: 'lazy.auto_publish', field: 'lazy.autoPublish', kind: 'boolean' },
  { toml: 'lazy.publish_key', field: 'lazy.publishKey', kind: 'optional-path' },
  { toml: 'lazy.startup_bundles', field: 'lazy.startupBundles', kind: 'boolean' },
  { toml: 'lazy.live_restart', field: 'lazy.liveRestart', kind: 'boolean' },
  { toml: 'lazy.live_restart_timeout', field: 'lazy.liveRestartTimeoutMs', kind: 'duration' },
  { toml: 'lazy.containerd_address', field: 'lazy.containerdAddress', kind: 'optional-path' },
  { toml: 'registry.hosts_dir', field: 'registry.hostsDirs', kind: 'path-list' },
  { toml: 'registry.docker_config', field: 'registry.dockerConfig', kind: 'optional-path' },
  { toml: 'registry.plain_http', field: 'registry.plainHttp', kind: 'boolean' },
  { toml: 'registry.request_timeout_seconds', field: 'registry.requestTimeoutMs', kind: 'seconds' },
  { toml: 'registry.min_transfer_rate', field: 'registry.minTransferRate', kind: 'bytes' },
  { toml: 'registry.transfer_window_seconds', field: 'registry.transferWindowMs', kind: 'seconds' },
  { toml: 'registry.retries', field: 'registry.retries', kind: 'count' },
  { toml: 'limits.max_archive_size', field: 'limits.maxArchiveBytes', kind: 'bytes' },
  { toml: 'limits.max_published_archive_size', field: 'limits.maxPublishedArchiveBytes', kind: 'bytes' },
  { toml: 'limits.max_startup_bundle_size', field: 'limits.maxStartupBundleBytes', kind: 'bytes' },
  { toml: 'limits.max_entries', field: 'limits.maxEntries', kind: 'limit' },
  { toml: 'limits.max_path_bytes', field: 'limits.maxPathBytes', kind: 'limit' },
  { toml: 'limits.max_name_bytes', field: 'limits.maxNameBytes', kind: 'limit' },
  { toml: 'limits.max_metadata_size', field: 'limits.maxMetadataBytes', kind: 'bytes' },
  { toml: 'limits.max_pax_size', field: 'limits.maxPaxBytes', kind: 'bytes' },
  { toml: 'limits.max_checkpoints', field: 'limits.maxCheckpoints', kind: 'limit' },
  { toml: 'limits.max_span_size', field: 'limits.maxSpanBytes', kind: 'bytes' },
  { toml: 'limits.max_layer_size', field: 'limits.maxLayerBytes', kind: 'bytes' },
  { toml: 'limits.max_zstd_ratio', field: 'limits.maxZstdRatio', kind: 'limit' },
  { toml: 'limits.zstd_ratio_grace_size', field: 'limits.zstdRatioGraceBytes', kind: 'bytes' },
  { toml: 'cache.max_size', field: 'cache.maxSize', kind: 'disk-share' },
  { toml: 'cache.min_free', field: 'cache.minFree', kind: 'disk-share' },
  { toml: 'cache.gc_grace', field: 'cache.gcGraceMs', kind: 'duration' },
  { toml: 'cri_keychain.enable', field: 'criKeychain.enabled', kind: 'boolean' },
  { toml: 'cri_keychain.image_service_path', field: 'criKeychain.imageServicePath', kind: 'path' },
  { toml: 'cri_keychain.containerd_image_service', field: 'criKeychain.containerdImageService', kind: 'path' },
  { toml: 'metrics.address', field: 'metrics.address', kind: 'listen-address' },
];

/** Partial settings by dotted field name, from a file or the command line; later layers win. */
export type ConfigOverrides = Record<string, unknown>;

export function parseLogLevel(value: string): LogLevel {
  if ((LOG_LEVELS as readonly string[]).includes(value)) return value as LogLevel;
  throw new InvalidArgumentError(`invalid log level ${JSON.stringify(value)}: expected one of ${LOG_LEVELS.join(', ')}`);
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: MIB, mb: MIB, mib: MIB, g: 1024 * MIB, gb: 1024 * MIB, gib: 1024 * MIB };

/** "4MiB", "512k", 1048576 → bytes. */
export function parseSize(value: unknown): number {
  if (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) return value;
  const m = typeof value === 'string' ? /^\s*([0-9]+)\s*([a-zA-Z]*)\s*$/.exec(value) : null;
  const unit = m ? SIZE_UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined || Number(m[1]) <= 0) {
    throw new InvalidArgumentError(`invalid size ${JSON.stringify(value)}: use bytes or a number with KiB, MiB or GiB`);
  }
  return Number(m[1]) * unit;
}

/** "20%" → { percent: 20 }; a size ("10GiB", bytes; 0 allowed) → { bytes }. */
export function parseDiskShare(value: unknown): DiskShare {
  if (value === 0 || value === '0') return { bytes: 0 };
  const m = typeof value === 'string' ? /^\s*([0-9]+(?:\.[0-9]+)?)\s*%\s*$/.exec(value) : null;
  if (m) {
    const percent = Number(m[1]);
    if (percent > 100) throw new InvalidArgumentError(`invalid share ${JSON.stringify(value)}: at most 100%`);
    return { percent };
  }
  try {
    return { bytes: parseSize(value) };
  } catch {
    throw new InvalidArgumentError(`invalid size ${JSON.stringify(value)}: use a size such as "10GiB" or a share of the filesystem such as "20%"`);
  }
}

/** Bytes of a DiskShare on a filesystem of `fsBytes` bytes. */
export function diskShareBytes(share: DiskShare, fsBytes: number): number {
  return 'bytes' in share ? share.bytes : Math.floor((fsBytes * share.percent) / 100);
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** "1h", "30m", "10s", "250ms", "1d" or a number of seconds → milliseconds (0 allowed). */
export function parseDuration(value: unknown): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return Math.round(value * 1000);
  const m = typeof value === 'string' ? /^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)\s*$/.exec(value) : null;
  if (!m) throw new InvalidArgumentError(`invalid duration ${JSON.stringify(value)}: use a number of seconds or e.g. "90s", "30m", "1h"`);
  return Math.round(Number(m[1]) * DURATION_UNITS[m[2]!]!);
}

function convert(setting: Setting, value: unknown): unknown {
  const bad = (what: string): never => {
    throw new InvalidArgumentError(`${setting.toml} must be ${what}, got ${JSON.stringify(value)}`);
  };
  switch (setting.kind) {
    case 'string':
      return typeof value === 'string' ? value : bad('a string');
    case 'path':
      return typeof value === 'string' && path.isAbsolute(value) ? path.normalize(value) : bad('an absolute path');
    case 'optional-path':
      if (value === '') return '';
      return typeof value === 'string' && path.isAbsolute(value) ? path.normalize(value) : bad('an absolute path or ""');
    case 'path-list': {
      // containerd's config_path form ("/a:/b") or a TOML array; "" or [] for none.
      const parts = typeof value === 'string' ? value.split(':').filter((p) => p !== '') : value;
      if (!Array.isArray(parts) || !parts.every((p) => typeof p === 'string' && path.isAbsolute(p))) {
        return bad('absolute paths, as "/a:/b" or ["/a", "/b"]');
      }
      return parts.map((p: string) => path.normalize(p));
    }
    case 'string-list':
      return Array.isArray(value) && value.every((v) => typeof v === 'string' && v !== '') ? [...(value as string[])] : bad('a list of strings');
    case 'verify-mode':
      return value === 'off' || value === 'background' ? value : bad('"off" or "background"');
    case 'boolean':
      return typeof value === 'boolean' ? value : bad('true or false');
    case 'count':
      return Number.isSafeInteger(value) && (value as number) >= 0 ? value : bad('a whole number ≥ 0');
    case 'limit':
      return Number.isSafeInteger(value) && (value as number) > 0 ? value : bad('a whole number > 0');
    case 'bytes':
      try {
        return parseSize(value);
      } catch {
        return bad('a size such as "4MiB"');
      }
    case 'seconds':
      return typeof value === 'number' && value > 0 && Number.isFinite(value) ? Math.round(value * 1000) : bad('a number of seconds > 0');
    case 'duration':
      try {
        return parseDuration(value);
      } catch {
        return bad('a duration such as "1h", "30m", "90s" or a number of seconds');
      }
    case 'disk-share':
      try {
        return parseDiskShare(value);
      } catch {
        return bad('a size such as "10GiB" or a share of the filesystem such as "20%"');
      }
    case 'log-level':
      return typeof value === 'string' ? parseLogLevel(value) : bad('a log level');
    case 'listen-address':
      if (typeof value !== 'string') return bad('"host:port", an absolute unix socket path, or ""');
      parseListenAddress(value);
      return value;
    case 'log-format':
      return (LOG_FORMATS as readonly unknown[]).includes(value) ? value : bad(`one of ${LOG_FORMATS.join(', ')}`);
  }
}

/** smol-toml's TomlError carries the 1-based line and column of a syntax error. */
function syntaxError(err: unknown, source: string): ConfigError {
  const { line, column } = err as { line?: unknown; column?: unknown };
  const where = typeof line === 'number' && typeof column === 'number' ? `${source}:${line}:${column}` : source;
  const reason = errorMessage(err).split('\n')[0]!.replace(/^Invalid TOML document:\s*/, '');
  return new ConfigError(`config ${where}: invalid TOML: ${reason}`, { cause: err });
}

/** "lazy.span_size" as an operator writes it: "[lazy] span_size". */
function displayName(dotted: string): string {
  const dot = dotted.lastIndexOf('.');
  return dot < 0 ? dotted : `[${dotted.slice(0, dot)}] ${dotted.slice(dot + 1)}`;
}

/** Parses the text of a TOML config file into overrides; unknown keys and wrong types are errors. */
export function parseConfigText(text: string, source: string): ConfigOverrides {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    throw syntaxError(err, source);
  }
  const flat: Record<string, unknown> = {};
  const flatten = (obj: Record<string, unknown>, prefix: string): void => {
    for (const [k, v] of Object.entries(obj)) {
      const name = prefix + k;
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) flatten(v as Record<string, unknown>, `${name}.`);
      else flat[name] = v;
    }
  };
  flatten(doc, '');
  const out: ConfigOverrides = {};
  for (const [name, value] of Object.entries(flat)) {
    const line = locateKey(text, name);
    const where = line === undefined ? source : `${source}:${line}`;
    const setting = SETTINGS.find((s) => s.toml === name);
    if (!setting) {
      const near = nearestName(name, SETTINGS.map((s) => s.toml));
      const hint = near === undefined ? 'see config/clip.toml for the settings' : `did you mean ${displayName(near)}?`;
      throw new ConfigError(`config ${where}: unknown setting ${displayName(name)} (${hint})`);
    }
    try {
      convert(setting, value); // validated here to name the file; converted once, in resolveConfig
      out[setting.field] = value;
    } catch (err) {
      throw new ConfigError(`config ${where}: ${errorMessage(err)}`, { cause: err });
    }
  }
  return out;
}

export async function loadConfigFile(file: string): Promise<ConfigOverrides> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`config ${file}: ${errorMessage(err)}`, { cause: err });
  }
  return parseConfigText(text, file);
}

/** Defaults, then each layer of overrides in order (undefined values are skipped), validated. */
export function resolveConfig(...layers: ConfigOverrides[]): DaemonConfig {
  const config = structuredClone(DEFAULT_CONFIG) as unknown as Record<string, Record<string, unknown>>;
  for (const layer of layers) {
    for (const [field, raw] of Object.entries(layer)) {
      if (raw === undefined) continue;
      const setting = SETTINGS.find((s) => s.field === field);
      if (!setting) throw new ConfigError(`unknown setting ${field}`);
      let value: unknown;
      try {
        value = convert(setting, raw);
      } catch (err) {
        throw new ConfigError(errorMessage(err), { cause: err });
      }
      const [section, key] = field.split('.') as [string, string | undefined];
      if (key === undefined) (config as Record<string, unknown>)[section] = value;
      else config[section]![key] = value;
    }
  }
  const resolved = config as unknown as DaemonConfig;
  if (resolved.lazy.autoPublish && resolved.lazy.publishKey === '') {
    throw new ConfigError('[lazy] auto_publish = true needs [lazy] publish_key: the ed25519 private key (PEM) this node signs the archives it publishes with');
  }
  if (resolved.limits.maxSpanBytes < resolved.lazy.spanSize) {
    throw new InvalidArgumentError(
      `limits.max_span_size (${resolved.limits.maxSpanBytes} bytes) must be at least lazy.span_size (${resolved.lazy.spanSize} bytes)`,
    );
  }
  return resolved;
}
