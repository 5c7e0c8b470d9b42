/**
 * Endpoint lookup for registry domains from a containerd-style hosts directory:
 * `<dir>/<host[:port]>/hosts.toml`, else `<dir>/_default/hosts.toml`, else the default server.
 * Files are read on every lookup (they are tiny), so edits apply without a restart, as in containerd;
 * so are the certificate files their `ca` and `client` settings name (host-tls.ts).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { RegistryEndpoint } from './endpoint';
import { InvalidArgumentError } from '../errors';
import { EndpointOptions, HostsFile, endpointsFor, parseHostsFile } from './hosts-file';
import { loadHostTls } from './host-tls';

export interface RegistryHostsOptions extends EndpointOptions {
  /** The hosts directory (containerd's `config_path`); no directory means defaults for every domain. */
  configDir?: string;
}

export class RegistryHosts {
  constructor(private readonly options: RegistryHostsOptions = {}) {}

  /** Endpoints to try for a registry domain (`host[:port]`), mirrors first. */
  async endpoints(domain: string): Promise<RegistryEndpoint[]> {
    const found = await this.hostsFile(domain);
    const endpoints = endpointsFor(domain, found?.file, this.options);
    return Promise.all(endpoints.map(async (e) => (e.tlsFiles ? { ...e, tls: await loadHostTls(e.tlsFiles, found!.path) } : e)));
  }

  private async hostsFile(domain: string): Promise<{ file: HostsFile; path: string } | undefined> {
    const dir = this.options.configDir;
    if (dir === undefined) return undefined;
    if (domain === '' || domain.includes('/') || domain.startsWith('.')) {
      throw new InvalidArgumentError(`invalid registry host ${JSON.stringify(domain)}`);
    }
    for (const name of [domain, '_default']) {
      const file = path.join(dir, name, 'hosts.toml');
      let text: string;
      try {
        text = await fsp.readFile(file, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') continue;
        throw new InvalidArgumentError(`cannot read ${file}: ${(err as Error).message}`, { cause: err });
      }
      return { file: parseHostsFile(text, file), path: file };
    }
    return undefined;
  }
}
