/**
 * Ed25519 keys for signing and verifying published archives, in the PEM files OpenSSL writes
 * (`openssl genpkey -algorithm ed25519 -out sign.pem`, `openssl pkey -in sign.pem -pubout -out sign.pub`).
 * A key is named by its key ID: "sha256:" + the hex sha256 of its DER SubjectPublicKeyInfo, the same for
 * the private key and the public key made from it.
 */
import { createHash, createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { InvalidArgumentError, errorMessage } from '../errors';

/** A PEM key file larger than this is not a key. */
const MAX_KEY_FILE_BYTES = 64 << 10;

export interface PublicKey {
  keyId: string;
  key: KeyObject;
  /** Where it was loaded from, for messages. */
  source: string;
}

export interface SigningKey {
  keyId: string;
  key: KeyObject;
}

export function keyIdOf(publicKey: KeyObject): string {
  return `sha256:${createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex')}`;
}

function requireEd25519(key: KeyObject, source: string): void {
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new InvalidArgumentError(`${source}: an ${key.asymmetricKeyType ?? 'unknown'} key; clip signs and verifies with ed25519 keys`);
  }
}

async function readKeyFile(file: string): Promise<string> {
  const st = await fsp.stat(file).catch((err: unknown) => {
    throw new InvalidArgumentError(`key ${file}: ${errorMessage(err)}`, { cause: err });
  });
  if (!st.isFile() || st.size > MAX_KEY_FILE_BYTES) throw new InvalidArgumentError(`key ${file}: not a PEM key file`);
  return fsp.readFile(file, 'utf8');
}

/** A public key from PEM text (SPKI "PUBLIC KEY"; a private key's public half is accepted too). */
export function parsePublicKey(pem: string, source: string): PublicKey {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw new InvalidArgumentError(`${source}: not a PEM public key (${errorMessage(err)})`, { cause: err });
  }
  requireEd25519(key, source);
  return { keyId: keyIdOf(key), key, source };
}

export async function loadPublicKey(file: string): Promise<PublicKey> {
  return parsePublicKey(await readKeyFile(file), `key ${file}`);
}

export function parseSigningKey(pem: string, source: string): SigningKey {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (err) {
    throw new InvalidArgumentError(`${source}: not a PEM private key (${errorMessage(err)})`, { cause: err });
  }
  requireEd25519(key, source);
  return { keyId: keyIdOf(createPublicKey(key)), key };
}

export async function loadSigningKey(file: string): Promise<SigningKey> {
  return parseSigningKey(await readKeyFile(file), `signing key ${file}`);
}

export function signBytes(key: SigningKey, data: Buffer): Buffer {
  return sign(null, data, key.key);
}

export function verifyBytes(key: PublicKey, data: Buffer, signature: Buffer): boolean {
  try {
    return verify(null, data, key.key, signature);
  } catch {
    return false;
  }
}
