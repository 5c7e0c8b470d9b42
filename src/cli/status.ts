/**
 * `clip status [--json]`: asks the running daemon for its state over its admin socket (beside its main
 * socket, adminSocketPath) and prints it. A daemon that does not answer is exit status 3.
 */
import { Command } from 'commander';
import http from 'node:http';
import { promises as fsp } from 'node:fs';
import { DEFAULT_CONFIG_FILE, adminSocketPath, loadConfigFile, resolveConfig } from '../daemon/config';
import type { DaemonStatus } from '../daemon/daemon-status';
import { DaemonUnreachableError, UnavailableError, errorMessage } from '../errors';
import { formatStatus } from './status-format';

const TIMEOUT_MS = 10_000;
const MAX_BYTES = 16 << 20;

interface StatusFlags {
  address?: string;
  config?: string;
  json?: boolean;
}

/** GET `path` on the admin socket: the body, or DaemonUnreachableError when nothing listens there. */
export function getAdmin(socketPath: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path, timeout: TIMEOUT_MS }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BYTES) req.destroy(new UnavailableError(`${socketPath}: answer larger than ${MAX_BYTES} bytes`));
        else chunks.push(chunk);
      });
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        if (res.statusCode === 200) resolve(body);
        else reject(new UnavailableError(`${socketPath}${path}: HTTP ${res.statusCode}: ${body.trim()}`));
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new DaemonUnreachableError(`clip does not answer on ${socketPath} within ${TIMEOUT_MS / 1000} s`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        reject(new DaemonUnreachableError(`clip is not running: no daemon listens on ${socketPath}`, { cause: err }));
      } else reject(err instanceof UnavailableError ? err : new UnavailableError(`${socketPath}: ${errorMessage(err)}`, { cause: err }));
    });
  });
}

export function statusCommand(): Command {
  return new Command('status')
    .description("show the running daemon's version, uptime and every layer it serves lazily or left to containerd (and why)")
    .option('--address <socket>', "the daemon's socket (default: from --config, else /run/clip/clip.sock); its admin socket is <socket>.admin")
    .option('--config <file>', `the daemon's TOML configuration file (default: ${DEFAULT_CONFIG_FILE} if it exists)`)
    .option('--json', 'print the status as JSON')
    .action(async (flags: StatusFlags) => {
      let address = flags.address;
      if (!address) {
        const file = flags.config ?? (await fsp.access(DEFAULT_CONFIG_FILE).then(() => DEFAULT_CONFIG_FILE, () => undefined));
        address = resolveConfig(file ? await loadConfigFile(file) : {}).address;
      }
      const body = await getAdmin(adminSocketPath(address), '/status');
      if (flags.json) process.stdout.write(body.endsWith('\n') ? body : `${body}\n`);
      else process.stdout.write(formatStatus(JSON.parse(body) as DaemonStatus));
    });
}
