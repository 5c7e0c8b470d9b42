/**
 * Credentials from docker's `config.json` format (docker/cli `cli/config/configfile`). The caller passes the file path
 * or the parsed object; nothing here looks at the environment or the home directory.
 *
 * * `auths` is keyed by `host[:port]` or a URL (`https://index.docker.io/v1/` for Docker Hub); keys
 *   are compared by host, and docker.io, index.docker.io and registry-1.docker.io are one registry.
 *   An entry holds `auth` (base64 `user:password`) or `username` + `password`, and/or
 *   `identitytoken`, `registrytoken`.
 * * `credHelpers[host]`, else `credsStore`, names a helper that is asked first; when it has nothing
 *   (or is not installed) the `auths` entry is used, as the docker CLI does.
 *
 * Errors name the offending key, never a value.
 */
import { promises as fsp } from 'node:fs';
import { credentialsFromHelper } from './credential-helper';
import { CredentialProvider, RegistryCredentials, hasCredentials } from './credentials';
import { InvalidArgumentError } from '../errors';
import { RegistryLogger, silentLogger } from './logger';

const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);
const DOCKER_HUB_SERVER_URL = 'https://index.docker.io/v1/';

export interface DockerCredentialsOptions {
  /** Directories searched for `docker-credential-*` helpers; without it helpers are not run. */
  helperSearchPath?: readonly string[];
  /** Longest a helper may run (default 10 s). */
  helperTimeoutMs?: number;
  logger?: RegistryLogger;
}

/** The registry a config key or host names: scheme and path dropped, lower-cased, Docker Hub aliases folded. */
export function registryKey(keyOrHost: string): string {
  const host = keyOrHost.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').split('/')[0]!.toLowerCase();
  return DOCKER_HUB_ALIASES.has(host) ? 'docker.io' : host;
}

type Table = Record<string, unknown>;

function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function decodeEntry(key: string, entry: unknown, source: string): RegistryCredentials {
  if (!isTable(entry)) throw new InvalidArgumentError(`${source}: auths[${JSON.stringify(key)}] must be an object`);
  const str = (field: string): string | undefined => {
    const v = entry[field];
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string') throw new InvalidArgumentError(`${source}: auths[${JSON.stringify(key)}].${field} must be a string`);
    return v;
  };
  const creds: RegistryCredentials = {};
  const auth = str('auth');
  if (auth !== undefined) {
    const decoded = Buffer.from(auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(auth.trim()) || colon <= 0) {
      throw new InvalidArgumentError(`${source}: auths[${JSON.stringify(key)}].auth is not base64 of user:password`);
    }
    creds.username = decoded.slice(0, colon);
    creds.password = decoded.slice(colon + 1);
  } else {
    creds.username = str('username');
    creds.password = str('password');
  }
  creds.identityToken = str('identitytoken');
  creds.registryToken = str('registrytoken');
  return creds;
}

export class DockerCredentials implements CredentialProvider {
  private readonly auths: Array<{ key: string; registry: string; creds: RegistryCredentials }> = [];
  private readonly credHelpers = new Map<string, string>();
  private readonly credsStore?: string;
  private readonly logger: RegistryLogger;

  private constructor(config: unknown, source: string, private readonly options: DockerCredentialsOptions) {
    this.logger = options.logger ?? silentLogger;
    if (!isTable(config)) throw new InvalidArgumentError(`${source}: expected a JSON object`);
    const auths = config['auths'] ?? {};
    if (!isTable(auths)) throw new InvalidArgumentError(`${source}: auths must be an object`);
    for (const [key, entry] of Object.entries(auths)) {
      this.auths.push({ key, registry: registryKey(key), creds: decodeEntry(key, entry, source) });
    }
    const helpers = config['credHelpers'] ?? {};
    if (!isTable(helpers)) throw new InvalidArgumentError(`${source}: credHelpers must be an object`);
    for (const [key, name] of Object.entries(helpers)) {
      if (typeof name !== 'string') throw new InvalidArgumentError(`${source}: credHelpers[${JSON.stringify(key)}] must be a string`);
      this.credHelpers.set(registryKey(key), name);
    }
    const store = config['credsStore'];
    if (store !== undefined && typeof store !== 'string') throw new InvalidArgumentError(`${source}: credsStore must be a string`);
    this.credsStore = store || undefined;
  }

  /** From a parsed config.json object. */
  static fromObject(config: unknown, options: DockerCredentialsOptions = {}, source = 'docker config'): DockerCredentials {
    return new DockerCredentials(config, source, options);
  }

  /** From a config.json file; a missing file means no credentials, as for the docker CLI. */
  static async fromFile(file: string, options: DockerCredentialsOptions = {}): Promise<DockerCredentials> {
    let text: string;
    try {
      text = await fsp.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new DockerCredentials({}, file, options);
      throw new InvalidArgumentError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
    }
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw new InvalidArgumentError(`${file}: invalid JSON`);
    }
    return new DockerCredentials(doc, file, options);
  }

  /** Credentials for a registry host (`host[:port]`), or undefined. */
  async get(host: string, signal?: AbortSignal): Promise<RegistryCredentials | undefined> {
    const registry = registryKey(host);
    const helper = this.credHelpers.get(registry) ?? this.credsStore;
    if (helper !== undefined) {
      const serverUrl = registry === 'docker.io' ? DOCKER_HUB_SERVER_URL : registry;
      const fromHelper = await credentialsFromHelper(helper, serverUrl, {
        searchPath: this.options.helperSearchPath ?? [],
        timeoutMs: this.options.helperTimeoutMs ?? 10_000,
        logger: this.logger,
        signal,
      });
      if (hasCredentials(fromHelper)) return fromHelper;
    }
    const matches = this.auths.filter((a) => a.registry === registry && hasCredentials(a.creds));
    const best = matches.find((a) => a.key === host) ?? matches[0];
    return best?.creds;
  }
}
