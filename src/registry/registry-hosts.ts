/**
 * Endpoint lookup for registry domains from containerd-style hosts directories, searched as containerd
 * 2.x searches its `config_path` list: in each directory in turn, `<dir>/<host>_<port>_`, `<dir>/<host[:port]>`
 * and `<dir>/_default`; the first of these that exists is the host's directory, and its `hosts.toml` (if
 * any) configures it. Without one, the default server. Files are read on every lookup (they are tiny), so
 * edits apply without a restart, as in containerd; so are the certificate files their `ca` and `client`
 * settings name (host-tls.ts).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { RegistryEndpoint } from './endpoint';
import { InvalidArgumentError } from '../errors';
import { EndpointOptions, HostsFile, endpointsFor, parseHostsFile } from './hosts-file';
import { loadHostTls } from './host-tls';

/** Entries of one hosts directory looked at when matching a host name. */
const MAX_HOST_DIRS = 4096;

export interface RegistryHostsOptions extends EndpointOptions {
  /**
   * The hosts directory, or directories searched in order (containerd's `config_path`); none means defaults
   * for every domain.
   */
  configDir?: string | readonly string[];
}

export class RegistryHosts {
  constructor(private readonly options: RegistryHostsOptions = {}) {}

  /** Endpoints to try for a registry domain (`host[:port]`), mirrors first. */
  async endpoints(domain: string): Promise<RegistryEndpoint[]> {
    const found = await this.hostsFile(domain);
    const endpoints = endpointsFor(domain, found?.file, this.options);
    return Promise.all(endpoints.map(async (e) => (e.tlsFiles ? { ...e, tls: await loadHostTls(e.tlsFiles, found!.path) } : e)));
  }

  /** The directories searched, in order. */
  get configDirs(): readonly string[] {
    const dir = this.options.configDir;
    return dir === undefined ? [] : typeof dir === 'string' ? [dir] : dir;
  }

  /** The host directory that configures `domain` (the first that exists, as containerd picks it), if any. */
  async hostDir(domain: string): Promise<string | undefined> {
    if (this.configDirs.length === 0) return undefined;
    if (domain === '' || domain.includes('/') || domain.startsWith('.')) {
      throw new InvalidArgumentError(`invalid registry host ${JSON.stringify(domain)}`);
    }
    const port = domain.lastIndexOf(':');
    const names = port > 0 ? [`${domain.slice(0, port)}_${domain.slice(port + 1)}_`, domain, '_default'] : [domain, '_default'];
    for (const dir of this.configDirs) {
      for (const name of names) {
        const hostDir = path.join(dir, name);
        try {
          await fsp.stat(hostDir);
          return hostDir;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') continue;
          throw new InvalidArgumentError(`cannot read ${hostDir}: ${(err as Error).message}`, { cause: err });
        }
      }
    }
    return undefined;
  }

  /**
   * The registry domains a bare host name may stand for, best first: every `host:port` with a host
   * directory (`<host>:<port>` or `<host>_<port>_`) in the hosts directories, then the host itself.
   * (containerd's distribution-source labels name a registry by host name only.)
   */
  async domainsNamed(hostname: string): Promise<string[]> {
    const found: string[] = [];
    for (const dir of this.configDirs) {
      let names: string[];
      try {
        names = await fsp.readdir(dir);
      } catch {
        continue;
      }
      for (const name of names.slice(0, MAX_HOST_DIRS)) {
        const m = /^(.*)(?::([0-9]{1,5})|_([0-9]{1,5})_)$/.exec(name);
        if (m && m[1] === hostname) found.push(`${hostname}:${m[2] ?? m[3]}`);
      }
    }
    return [...new Set([...found.sort(), hostname])];
  }

  /** The hosts.toml that configures `domain`, if there is one. */
  async hostsFilePath(domain: string): Promise<string | undefined> {
    const dir = await this.hostDir(domain);
    if (dir === undefined) return undefined;
    const file = path.join(dir, 'hosts.toml');
    return (await fsp.stat(file).then(() => true, () => false)) ? file : undefined;
  }

  private async hostsFile(domain: string): Promise<{ file: HostsFile; path: string } | undefined> {
    const dir = await this.hostDir(domain);
    if (dir === undefined) return undefined;
    const file = path.join(dir, 'hosts.toml');
    let text: string;
    try {
      text = await fsp.readFile(file, 'utf8');
    } catch (err) {
      // A host directory without hosts.toml (certificates only, docker's layout): the default server.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new InvalidArgumentError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
    }
    return { file: parseHostsFile(text, file), path: file };
  }
}
