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
import { InvalidArgumentError, errorMessage } from '../errors';

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface DaemonConfig {
  /** Directory holding clip's metadata, snapshots, clip archives and content cache. */
  root: string;
  /** Unix socket path containerd connects to. */
  address: string;
  logLevel: LogLevel;
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
    /** Record which spans containers read as they start, and load a recorded profile's spans at mount. */
    startupProfiles: boolean;
  };
  registry: {
    /** containerd-style hosts.toml directory (mirrors, plain http), or '' for none. */
    hostsDir: string;
    /** docker config.json with registry credentials, or '' for none. */
    dockerConfig: string;
    /** Reach registries without a hosts.toml entry over plain http (like `ctr --plain-http`; never docker.io). */
    plainHttp: boolean;
    /** Time limit of one registry request. */
    requestTimeoutMs: number;
    /** Retries of a failed registry request (with back-off). */
    retries: number;
  };
  criKeychain: {
    /** Serve a CRI image service that forwards to containerd's and keeps each pull's credentials in memory. */
    enabled: boolean;
    /** Unix socket of that image service (kubelet's --image-service-endpoint). */
    imageServicePath: string;
    /** containerd's socket, which serves the CRI image service the calls are forwarded to. */
    containerdImageService: string;
  };
}

const MIB = 1024 * 1024;

export const DEFAULT_CONFIG: DaemonConfig = {
  root: '/var/lib/clip',
  address: '/run/clip/clip.sock',
  logLevel: 'info',
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
    startupProfiles: true,
  },
  registry: {
    hostsDir: '/etc/containerd/certs.d',
    dockerConfig: '/root/.docker/config.json',
    plainHttp: false,
    requestTimeoutMs: 30_000,
    retries: 3,
  },
  criKeychain: {
    enabled: false,
    imageServicePath: '/run/clip/cri.sock',
    containerdImageService: '/run/containerd/containerd.sock',
  },
};

type Kind = 'string' | 'path' | 'optional-path' | 'boolean' | 'count' | 'bytes' | 'seconds' | 'log-level';

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
  { toml: 'lazy.enabled', field: 'lazy.enabled', kind: 'boolean' },
  { toml: 'lazy.span_size', field: 'lazy.spanSize', kind: 'bytes' },
  { toml: 'lazy.background_fetch', field: 'lazy.backgroundFetch', kind: 'boolean' },
  { toml: 'lazy.cache_while_indexing', field: 'lazy.cacheWhileIndexing', kind: 'boolean' },
  { toml: 'lazy.prefetch_image_layers', field: 'lazy.prefetchImageLayers', kind: 'boolean' },
  { toml: 'lazy.index_concurrency', field: 'lazy.indexConcurrency', kind: 'count' },
  { toml: 'lazy.archive_store_max_size', field: 'lazy.archiveStoreMaxBytes', kind: 'bytes' },
  { toml: 'lazy.read_timeout_seconds', field: 'lazy.readTimeoutMs', kind: 'seconds' },
  { toml: 'lazy.published_archives', field: 'lazy.publishedArchives', kind: 'boolean' },
  { toml: 'lazy.startup_profiles', field: 'lazy.startupProfiles', kind: 'boolean' },
  { toml: 'registry.hosts_dir', field: 'registry.hostsDir', kind: 'optional-path' },
  { toml: 'registry.docker_config', field: 'registry.dockerConfig', kind: 'optional-path' },
  { toml: 'registry.plain_http', field: 'registry.plainHttp', kind: 'boolean' },
  { toml: 'registry.request_timeout_seconds', field: 'registry.requestTimeoutMs', kind: 'seconds' },
  { toml: 'registry.retries', field: 'registry.retries', kind: 'count' },
  { toml: 'cri_keychain.enable', field: 'criKeychain.enabled', kind: 'boolean' },
  { toml: 'cri_keychain.image_service_path', field: 'criKeychain.imageServicePath', kind: 'path' },
  { toml: 'cri_keychain.containerd_image_service', field: 'criKeychain.containerdImageService', kind: 'path' },
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
    case 'boolean':
      return typeof value === 'boolean' ? value : bad('true or false');
    case 'count':
      return Number.isSafeInteger(value) && (value as number) >= 0 ? value : bad('a whole number ≥ 0');
    case 'bytes':
      try {
        return parseSize(value);
      } catch {
        return bad('a size such as "4MiB"');
      }
    case 'seconds':
      return typeof value === 'number' && value > 0 && Number.isFinite(value) ? Math.round(value * 1000) : bad('a number of seconds > 0');
    case 'log-level':
      return typeof value === 'string' ? parseLogLevel(value) : bad('a log level');
  }
}

/** Parses the text of a TOML config file into overrides; unknown keys and wrong types are errors. */
export function parseConfigText(text: string, source: string): ConfigOverrides {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    throw new InvalidArgumentError(`config ${source}: ${errorMessage(err).split('\n')[0]}`, { cause: err });
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
    const setting = SETTINGS.find((s) => s.toml === name);
    if (!setting) throw new InvalidArgumentError(`config ${source}: unknown setting ${JSON.stringify(name)}`);
    try {
      convert(setting, value); // validated here to name the file; converted once, in resolveConfig
      out[setting.field] = value;
    } catch (err) {
      throw new InvalidArgumentError(`config ${source}: ${errorMessage(err)}`, { cause: err });
    }
  }
  return out;
}

export async function loadConfigFile(file: string): Promise<ConfigOverrides> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`config ${file}: ${errorMessage(err)}`, { cause: err });
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
      if (!setting) throw new InvalidArgumentError(`unknown setting ${field}`);
      const value = convert(setting, raw);
      const [section, key] = field.split('.') as [string, string | undefined];
      if (key === undefined) (config as Record<string, unknown>)[section] = value;
      else config[section]![key] = value;
    }
  }
  return config as unknown as DaemonConfig;
}
