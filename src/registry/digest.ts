/**
 * Content digests (`algorithm:encoded`, OCI image-spec descriptor.md): validation, computing and
 * verifying. sha256 and sha512 are the registered algorithms clip can verify.
 */
import { createHash } from 'node:crypto';
import { InvalidArgumentError } from '../errors';
import { DigestMismatchError } from './registry-errors';

const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const HEX_LENGTH: Record<string, number> = { sha256: 64, sha512: 128 };

/** Throws InvalidArgumentError unless `value` is a well-formed digest with a verifiable algorithm. */
export function validateDigest(value: string): string {
  if (!DIGEST.test(value)) throw new InvalidArgumentError(`invalid digest ${JSON.stringify(value)}: expected algorithm:hex`);
  const [algorithm, encoded] = value.split(':') as [string, string];
  const length = HEX_LENGTH[algorithm];
  if (length === undefined) throw new InvalidArgumentError(`unsupported digest algorithm ${JSON.stringify(algorithm)} in ${value}`);
  if (encoded.length !== length || !/^[a-f0-9]+$/.test(encoded)) {
    throw new InvalidArgumentError(`invalid ${algorithm} digest ${JSON.stringify(value)}: expected ${length} lowercase hex digits`);
  }
  return value;
}

/** `algorithm:hex` of `data`. */
export function computeDigest(data: Uint8Array, algorithm = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

/** Throws DigestMismatchError unless `data` hashes to `expected`; `what` names the content in the message. */
export function verifyDigest(data: Uint8Array, expected: string, what: string): void {
  validateDigest(expected);
  const actual = computeDigest(data, expected.slice(0, expected.indexOf(':')));
  if (actual !== expected) throw new DigestMismatchError(`${what}: digest mismatch: expected ${expected}, got ${actual}`);
}
