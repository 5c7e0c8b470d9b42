/**
 * The registry options shared by every command that talks to a registry (`--plain-http`, `--hosts-dir`,
 * `--platform`) and the RegistryClient they describe. Credentials come from the docker CLI's config.json.
 */
import { Command } from 'commander';
import os from 'node:os';
import path from 'node:path';
import { errorMessage } from '../errors';
import { UsageError } from './exit-codes';
import { DockerCredentials, Platform, RegistryClient, formatPlatform, hostPlatform, parsePlatform } from '../registry';

export interface RegistryFlags {
  plainHttp?: boolean;
  hostsDir?: string;
  platform: string;
}

export function addRegistryOptions(cmd: Command): Command {
  return cmd
    .option('--plain-http', 'reach registries without a hosts.toml entry over plain http (never docker.io)')
    .option('--hosts-dir <dirs>', 'containerd-style hosts directories, ":"-separated, first match wins (<dir>/<host>/hosts.toml: mirrors, plain http)')
    .option('--platform <os/arch[/variant]>', 'platform to use from a multi-platform image', formatPlatform(hostPlatform()));
}

/** $DOCKER_CONFIG/config.json, else ~/.docker/config.json. */
function dockerConfigFile(): string {
  return path.join(process.env.DOCKER_CONFIG || path.join(os.homedir(), '.docker'), 'config.json');
}

export async function registryFromFlags(flags: RegistryFlags): Promise<{ registry: RegistryClient; platform: Platform }> {
  let platform: Platform;
  try {
    platform = parsePlatform(flags.platform);
  } catch (err) {
    throw new UsageError(`--platform: ${errorMessage(err)}`, { cause: err });
  }
  const registry = new RegistryClient({
    hosts: { configDir: flags.hostsDir === undefined ? undefined : hostsDirs(flags.hostsDir), plainHttp: flags.plainHttp === true },
    credentials: await DockerCredentials.fromFile(dockerConfigFile()),
    platform,
  });
  return { registry, platform };
}

/** `--hosts-dir a:b` as absolute directories, in order. */
export function hostsDirs(flag: string): string[] {
  return flag.split(':').filter((d) => d !== '').map((d) => path.resolve(d));
}

/** An error message on one line: registry and containerd messages may span several. */
export function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ');
}
