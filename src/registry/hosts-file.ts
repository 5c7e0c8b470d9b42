/**
 * containerd's `hosts.toml` (registry `config_path` directories): parsing one file and turning it into
 * the ordered endpoint list for a registry domain — every `[host."URL"]` mirror in file order, then the
 * `server` (default `https://<domain>`, `https://registry-1.docker.io` for docker.io).
 *
 *   server = "https://registry.example.com"
 *   [host."https://mirror.example.com"]
 *     capabilities = ["pull", "resolve"]
 *     skip_verify = true
 *     override_path = true           # the URL path is the API root as is (no /v2 appended)
 *     ca = "mirror-ca.pem"           # or a list: extra CA certificates trusted for this host
 *     client = [["client.pem", "client.key"]]
 *     [host."https://mirror.example.com".header]
 *       x-custom = "value"           # or ["a", "b"]
 *
 * Top-level `capabilities`, `skip_verify`, `override_path`, `ca`, `client` and `[header]` apply to the
 * server. A URL without `/v2` at the end of its path gets it appended unless `override_path` is set.
 * `http://` URLs are plain HTTP. Keys clip does not use (`dial_timeout`) are ignored, as containerd
 * ignores unknown ones.
 *
 * `ca` and `client` take file paths, as in containerd: relative ones are resolved against the directory
 * of the hosts.toml. `ca` is a file or a list of files of PEM certificates, trusted in addition to the
 * default roots. `client` is a file holding a certificate and its key, a list of such files, or a list
 * whose items are such files or `[cert, key]` pairs (an empty key means the key is in the cert's file).
 * Reading the files is RegistryHosts' job (host-tls.ts); this parser only resolves their paths.
 */
import path from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { ALL_CAPABILITIES, HostCapability, RegistryEndpoint, TlsFiles, defaultEndpoint } from './endpoint';
import { InvalidArgumentError } from '../errors';

interface HostSettings {
  url: URL;
  capabilities: readonly HostCapability[];
  skipVerify: boolean;
  overridePath: boolean;
  headers: Record<string, string[]>;
  tlsFiles?: TlsFiles;
}

export interface HostsFile {
  /** The `server` setting with the top-level options; undefined when the file has no `server`. */
  server?: HostSettings;
  /** Top-level options, applied to the default server when `server` is absent. */
  serverDefaults: Omit<HostSettings, 'url'>;
  /** `[host."URL"]` entries in file order. */
  mirrors: HostSettings[];
}

type Table = Record<string, unknown>;

function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

function bad(source: string, what: string): InvalidArgumentError {
  return new InvalidArgumentError(`${source}: ${what}`);
}

function parseUrl(value: unknown, where: string, source: string): URL {
  if (typeof value !== 'string') throw bad(source, `${where} must be a string URL`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw bad(source, `${where}: invalid URL ${JSON.stringify(value)} (expected http:// or https:// with a host)`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.host === '') {
    throw bad(source, `${where}: invalid URL ${JSON.stringify(value)} (expected http:// or https:// with a host)`);
  }
  if (url.username || url.password || url.search || url.hash) {
    throw bad(source, `${where}: URL ${JSON.stringify(value)} must not carry credentials, a query or a fragment`);
  }
  return url;
}

/** `ca` and `client` of one table, with paths resolved against `baseDir`; undefined when neither is set. */
function parseTlsFiles(table: Table, where: string, source: string, baseDir: string): TlsFiles | undefined {
  const ca = table['ca'];
  const client = table['client'];
  if (ca === undefined && client === undefined) return undefined;
  const file = (v: unknown, what: string): string => {
    if (typeof v !== 'string' || v === '') throw bad(source, `${where}${what} must be a file path`);
    return path.resolve(baseDir, v);
  };
  const files: TlsFiles = { ca: [], client: [] };
  if (ca !== undefined) {
    if (typeof ca === 'string') files.ca.push(file(ca, 'ca'));
    else if (Array.isArray(ca)) for (const c of ca) files.ca.push(file(c, 'ca'));
    else throw bad(source, `${where}ca must be a file path or an array of file paths`);
  }
  if (client !== undefined) {
    if (typeof client === 'string') files.client.push({ cert: file(client, 'client') });
    else if (Array.isArray(client)) {
      for (const item of client) {
        if (typeof item === 'string') files.client.push({ cert: file(item, 'client') });
        else if (Array.isArray(item) && item.length === 2 && item.every((v) => typeof v === 'string')) {
          const [cert, key] = item as [string, string];
          files.client.push(key === '' ? { cert: file(cert, 'client certificate') } : { cert: file(cert, 'client certificate'), key: file(key, 'client key') });
        } else {
          throw bad(source, `${where}client items must be file paths or [certificate, key] pairs of file paths`);
        }
      }
    } else throw bad(source, `${where}client must be a file path or an array of file paths or [certificate, key] pairs`);
  }
  return files;
}

function parseSettings(table: Table, where: string, source: string, baseDir: string): Omit<HostSettings, 'url'> {
  let capabilities: readonly HostCapability[] = ALL_CAPABILITIES;
  if (table['capabilities'] !== undefined) {
    const caps = table['capabilities'];
    if (!Array.isArray(caps)) throw bad(source, `${where}capabilities must be an array`);
    capabilities = caps.map((c) => {
      if (c !== 'pull' && c !== 'resolve' && c !== 'push') throw bad(source, `${where}unknown capability ${JSON.stringify(c)}`);
      return c;
    });
  }
  const flag = (key: string): boolean => {
    const v = table[key];
    if (v === undefined) return false;
    if (typeof v !== 'boolean') throw bad(source, `${where}${key} must be true or false`);
    return v;
  };
  const headers: Record<string, string[]> = {};
  const header = table['header'];
  if (header !== undefined) {
    if (!isTable(header)) throw bad(source, `${where}header must be a table`);
    for (const [name, value] of Object.entries(header)) {
      const values = Array.isArray(value) ? value : [value];
      if (values.length === 0 || values.some((v) => typeof v !== 'string')) {
        throw bad(source, `${where}header ${JSON.stringify(name)} must be a string or an array of strings`);
      }
      headers[name.toLowerCase()] = values as string[];
    }
  }
  const tlsFiles = parseTlsFiles(table, where, source, baseDir);
  return { capabilities, skipVerify: flag('skip_verify'), overridePath: flag('override_path'), headers, ...(tlsFiles ? { tlsFiles } : {}) };
}

/**
 * Parses the text of a hosts.toml; `source` names the file in errors, and relative `ca` and `client` paths
 * are resolved against `baseDir` (default: the directory of `source`).
 */
export function parseHostsFile(text: string, source: string, baseDir = path.dirname(path.resolve(source))): HostsFile {
  let doc: Table;
  try {
    doc = parseToml(text) as Table;
  } catch (err) {
    throw new InvalidArgumentError(`${source}: invalid TOML: ${(err as Error).message}`, { cause: err });
  }
  const serverDefaults = parseSettings(doc, '', source, baseDir);
  const server = doc['server'] === undefined ? undefined : { url: parseUrl(doc['server'], 'server', source), ...serverDefaults };
  const mirrors: HostSettings[] = [];
  const hosts = doc['host'];
  if (hosts !== undefined) {
    if (!isTable(hosts)) throw bad(source, 'host must be a table of [host."URL"] sections');
    for (const [key, value] of Object.entries(hosts)) {
      const where = `host ${JSON.stringify(key)}: `;
      if (!isTable(value)) throw bad(source, `${where}must be a table`);
      mirrors.push({ url: parseUrl(key, `host ${JSON.stringify(key)}`, source), ...parseSettings(value, where, source, baseDir) });
    }
  }
  return { server, serverDefaults, mirrors };
}

function apiRoot(url: URL, overridePath: boolean): URL {
  const root = new URL(url.href);
  let path = root.pathname.replace(/\/+$/, '');
  if (!overridePath && !path.endsWith('/v2')) path = `${path}/v2`;
  root.pathname = path || '/';
  return root;
}

function toEndpoint(settings: HostSettings, mirror: boolean): RegistryEndpoint {
  return {
    apiRoot: apiRoot(settings.url, settings.overridePath),
    capabilities: settings.capabilities,
    skipVerify: settings.skipVerify,
    headers: settings.headers,
    mirror,
    ...(settings.tlsFiles ? { tlsFiles: settings.tlsFiles } : {}),
  };
}

export interface EndpointOptions {
  /** Use http:// for the default server of every domain but docker.io (like `ctr --plain-http`). */
  plainHttp?: boolean;
}

/** The endpoints to try for `domain`, in order: mirrors first, then the server. */
export function endpointsFor(domain: string, file: HostsFile | undefined, options: EndpointOptions = {}): RegistryEndpoint[] {
  const plainHttp = options.plainHttp ?? false;
  if (!file) return [defaultEndpoint(domain, plainHttp)];
  const server = file.server ?? { url: defaultEndpoint(domain, plainHttp).apiRoot, ...file.serverDefaults, overridePath: false };
  const endpoints = [...file.mirrors.map((m) => toEndpoint(m, true)), toEndpoint(server, false)];
  // A file that lists its server as a host too (`server = "http://r"` and `[host."http://r"]`, a common way
  // to say "plain http") would have every miss asked twice of the same registry.
  return endpoints.filter((e, i) => !endpoints.slice(0, i).some((earlier) => covers(earlier, e)));
}

/** Whether `earlier` is the same endpoint as `later`, with the same settings and at least its capabilities. */
function covers(earlier: RegistryEndpoint, later: RegistryEndpoint): boolean {
  return (
    earlier.apiRoot.href === later.apiRoot.href &&
    (earlier.skipVerify === later.skipVerify || earlier.apiRoot.protocol === 'http:') &&
    JSON.stringify(earlier.headers) === JSON.stringify(later.headers) &&
    JSON.stringify(earlier.tlsFiles) === JSON.stringify(later.tlsFiles) &&
    later.capabilities.every((c) => earlier.capabilities.includes(c))
  );
}
