/**
 * The `clip` command's exit status: one number per kind of failure, so that scripts and service
 * managers can react without parsing messages. Errors are classified along their `cause` chain, so a
 * command may wrap an error with context ("pull IMAGE: …") and keep its class.
 */
import { CommanderError } from 'commander';
import { ConfigError, DaemonUnreachableError, InvalidArgumentError } from '../errors';
import {
  DigestMismatchError,
  NoMatchingPlatformError,
  RegistryAuthError,
  RegistryNotFoundError,
  RegistryProtocolError,
  RegistryRequestError,
  UnsupportedManifestError,
} from '../registry';

export const EXIT_CODES = {
  /** Any other failure while working. */
  runtime: 1,
  /** Wrong arguments or options. */
  usage: 2,
  /** The daemon the command talks to (containerd, clip) does not answer. */
  daemonUnreachable: 3,
  /** The registry refused, failed or could not be reached. */
  registry: 4,
  /** The configuration file or a setting is wrong. */
  config: 5,
} as const;

export const EXIT_CODES_HELP = `
Exit status:
  0  success
  1  runtime failure
  2  usage: wrong arguments or options
  3  the daemon the command talks to (containerd, clip) cannot be reached
  4  registry: not found, denied, unreachable, or bad content
  5  configuration: the config file or a setting is wrong`;

/** Wrong command-line arguments the parser itself cannot catch. */
export class UsageError extends InvalidArgumentError {}

const REGISTRY_ERRORS = [
  RegistryNotFoundError,
  RegistryAuthError,
  RegistryRequestError,
  RegistryProtocolError,
  DigestMismatchError,
  UnsupportedManifestError,
  NoMatchingPlatformError,
];

/** Socket, DNS and TLS failures (undici's and Node's codes): only registries are reached over HTTP. */
function isNetworkCode(code: unknown): boolean {
  return (
    typeof code === 'string' &&
    (/^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENETDOWN|EAI_AGAIN|ENOTFOUND|EPROTO)$/.test(code) ||
      /^(UND_ERR_|ERR_SSL_|ERR_TLS_)/.test(code) ||
      code.includes('CERT'))
  );
}

function chain(err: unknown): unknown[] {
  const errors: unknown[] = [];
  for (let e: unknown = err; e !== undefined && errors.length < 8; e = e instanceof Error ? e.cause : undefined) errors.push(e);
  return errors;
}

export function exitCodeFor(err: unknown): number {
  const errors = chain(err);
  const has = (test: (e: unknown) => boolean): boolean => errors.some(test);
  const commander = errors.find((e): e is CommanderError => e instanceof CommanderError);
  if (commander) return commander.exitCode === 0 ? 0 : EXIT_CODES.usage;
  if (has((e) => e instanceof UsageError)) return EXIT_CODES.usage;
  if (has((e) => e instanceof ConfigError)) return EXIT_CODES.config;
  if (has((e) => e instanceof DaemonUnreachableError)) return EXIT_CODES.daemonUnreachable;
  if (has((e) => REGISTRY_ERRORS.some((cls) => e instanceof cls) || (e instanceof Error && isNetworkCode((e as { code?: unknown }).code)))) {
    return EXIT_CODES.registry;
  }
  return EXIT_CODES.runtime;
}
