/**
 * Docker credential helpers (`docker-credential-<name> get`): the server URL goes to stdin, JSON
 * `{"ServerURL","Username","Secret"}` comes back on stdout; a Username of `<token>` means Secret is an
 * identity token. The helper is looked up only in the directories the caller passes (no implicit
 * PATH); a missing helper, "credentials not found", a failure or a timeout all mean "no credentials
 * from this helper", logged without any of the helper's output.
 */
import { spawn } from 'node:child_process';
import { constants, promises as fsp } from 'node:fs';
import path from 'node:path';
import { RegistryCredentials } from './credentials';
import { RegistryLogger } from './logger';

export interface CredentialHelperOptions {
  /** Directories searched for `docker-credential-<name>`, in order. Empty: helpers are never run. */
  searchPath: readonly string[];
  timeoutMs: number;
  logger: RegistryLogger;
  signal?: AbortSignal;
}

const OUTPUT_LIMIT = 64 * 1024;

async function findHelper(name: string, searchPath: readonly string[]): Promise<string | undefined> {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) return undefined;
  for (const dir of searchPath) {
    const file = path.join(dir, `docker-credential-${name}`);
    try {
      await fsp.access(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

interface HelperResult {
  code: number | null;
  stdout: string;
  timedOut: boolean;
}

function runHelper(file: string, serverUrl: string, timeoutMs: number, signal?: AbortSignal): Promise<HelperResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, ['get'], { stdio: ['pipe', 'pipe', 'ignore'], signal });
    let stdout = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (d: Buffer) => {
      if (stdout.length < OUTPUT_LIMIT) stdout += d.toString('utf8');
    });
    child.stdin.on('error', () => undefined); // a helper that exits without reading stdin
    child.stdin.end(serverUrl);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, timedOut });
    });
  });
}

/** Credentials for `serverUrl` from helper `name`, or undefined (see the module comment). */
export async function credentialsFromHelper(name: string, serverUrl: string, options: CredentialHelperOptions): Promise<RegistryCredentials | undefined> {
  const file = await findHelper(name, options.searchPath);
  if (!file) {
    options.logger.debug(`credential helper docker-credential-${name} not found; skipping it for ${serverUrl}`);
    return undefined;
  }
  let result: HelperResult;
  try {
    result = await runHelper(file, serverUrl, options.timeoutMs, options.signal);
  } catch (err) {
    if (options.signal?.aborted) throw err;
    options.logger.warn(`credential helper ${file} could not run: ${(err as Error).message}`);
    return undefined;
  }
  if (result.timedOut) {
    options.logger.warn(`credential helper ${file} timed out after ${options.timeoutMs} ms for ${serverUrl}`);
    return undefined;
  }
  if (result.code !== 0) {
    if (/credentials not found/i.test(result.stdout)) return undefined;
    options.logger.warn(`credential helper ${file} failed (exit ${String(result.code)}) for ${serverUrl}`);
    return undefined;
  }
  let doc: { Username?: unknown; Secret?: unknown };
  try {
    doc = JSON.parse(result.stdout) as typeof doc;
  } catch {
    options.logger.warn(`credential helper ${file} printed something that is not JSON for ${serverUrl}`);
    return undefined;
  }
  const username = typeof doc.Username === 'string' ? doc.Username : '';
  const secret = typeof doc.Secret === 'string' ? doc.Secret : '';
  if (secret === '') return undefined;
  if (username === '<token>') return { identityToken: secret };
  return { username, password: secret };
}
