/**
 * The daemon's configuration: defaults, the TOML file (--config) and command-line overrides, merged and
 * validated in one place. Nothing else in clip reads configuration files or the environment.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { InvalidArgumentError, errorMessage } from '../errors';

export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface DaemonConfig {
  /** Directory holding clip's metadata and snapshot directories. */
  root: string;
  /** Unix socket path containerd connects to. */
  address: string;
  logLevel: LogLevel;
}

export const DEFAULT_CONFIG: DaemonConfig = {
  root: '/var/lib/clip',
  address: '/run/clip/clip.sock',
  logLevel: 'info',
};

/** Settings that may come from the command line; they win over the file. */
export type ConfigOverrides = Partial<DaemonConfig>;

const FILE_KEYS: Record<string, keyof DaemonConfig> = {
  root: 'root',
  address: 'address',
  log_level: 'logLevel',
};

export function parseLogLevel(value: string): LogLevel {
  if ((LOG_LEVELS as readonly string[]).includes(value)) return value as LogLevel;
  throw new InvalidArgumentError(`invalid log level ${JSON.stringify(value)}: expected one of ${LOG_LEVELS.join(', ')}`);
}

function requireAbsolute(what: string, value: string): string {
  if (value === '' || !path.isAbsolute(value)) {
    throw new InvalidArgumentError(`${what} must be an absolute path, got ${JSON.stringify(value)}`);
  }
  return path.normalize(value);
}

/** Parses the text of a TOML config file into overrides; unknown keys and wrong types are errors. */
export function parseConfigText(text: string, source: string): ConfigOverrides {
  let doc: Record<string, unknown>;
  try {
    doc = parseToml(text) as Record<string, unknown>;
  } catch (err) {
    throw new InvalidArgumentError(`config ${source}: ${errorMessage(err).split('\n')[0]}`, { cause: err });
  }
  const out: ConfigOverrides = {};
  for (const [key, value] of Object.entries(doc)) {
    const field = FILE_KEYS[key];
    if (!field) throw new InvalidArgumentError(`config ${source}: unknown setting ${JSON.stringify(key)}`);
    if (typeof value !== 'string') throw new InvalidArgumentError(`config ${source}: ${key} must be a string`);
    if (field === 'logLevel') out.logLevel = parseLogLevel(value);
    else out[field] = value;
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

/** Defaults, then the file, then the command line; paths are checked and normalised. */
export function resolveConfig(...layers: ConfigOverrides[]): DaemonConfig {
  const merged: DaemonConfig = { ...DEFAULT_CONFIG };
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer)) if (v !== undefined) (merged as unknown as Record<string, unknown>)[k] = v;
  }
  return {
    root: requireAbsolute('root', merged.root),
    address: requireAbsolute('address', merged.address),
    logLevel: parseLogLevel(merged.logLevel),
  };
}
