/**
 * The signed statement about one published clip archive (docs/security.md, "Signed archives"): "the
 * archive with digest A describes the layer with digest L, whose uncompressed stream has diff ID D, in the
 * image whose platform manifest is M". It travels as a DSSE envelope (dsse.ts) in the annotation
 * `dev.clip.signature` of the archive's descriptor in the published artifact.
 */
import { InvalidArgumentError } from '../errors';
import { DsseEnvelope, encodeEnvelope, parseEnvelope, preAuthEncoding } from './dsse';
import { UntrustedError } from './errors';
import { PublicKey, SigningKey, signBytes, verifyBytes } from './signing-keys';

export const STATEMENT_PAYLOAD_TYPE = 'application/vnd.clip.archive-statement.v1+json';
const STATEMENT_TYPE = 'dev.clip.archive-statement.v1';
const DIGEST = /^sha256:[0-9a-f]{64}$/;

export interface ArchiveStatement {
  /** Digest of the archive file's bytes. */
  archive: string;
  /** Digest of the image layer it describes. */
  layer: string;
  /** Diff ID of that layer (what the archive's diff_id says). */
  diffId: string;
  /** Digest of the image's platform manifest it was published for. */
  manifest: string;
}

function checkStatement(s: ArchiveStatement): ArchiveStatement {
  for (const field of ['archive', 'layer', 'diffId', 'manifest'] as const) {
    if (typeof s[field] !== 'string' || !DIGEST.test(s[field])) {
      throw new InvalidArgumentError(`archive statement: ${field} is not a sha256 digest`);
    }
  }
  return s;
}

/** The statement as payload bytes: fixed field order, so equal statements give equal bytes. */
function statementBytes(s: ArchiveStatement): Buffer {
  const { archive, layer, diffId, manifest } = checkStatement(s);
  return Buffer.from(JSON.stringify({ _type: STATEMENT_TYPE, archive, layer, diffId, manifest }));
}

/** A DSSE envelope holding `statement`, signed with `key` (ed25519 signatures are deterministic). */
export function signStatement(statement: ArchiveStatement, key: SigningKey): string {
  const payload = statementBytes(statement);
  const envelope: DsseEnvelope = {
    payloadType: STATEMENT_PAYLOAD_TYPE,
    payload,
    signatures: [{ keyid: key.keyId, sig: signBytes(key, preAuthEncoding(STATEMENT_PAYLOAD_TYPE, payload)) }],
  };
  return encodeEnvelope(envelope);
}

export interface VerifiedStatement {
  statement: ArchiveStatement;
  /** The trusted key whose signature verified. */
  keyId: string;
}

/**
 * The statement in `envelopeText` if one of its signatures verifies against one of `keys`; throws
 * UntrustedError otherwise (and InvalidArgumentError for a malformed envelope or statement). Signatures
 * naming a key ID are checked only against that key; ones without a key ID against every key.
 */
export function verifyStatement(envelopeText: string, keys: readonly PublicKey[]): VerifiedStatement {
  const envelope = parseEnvelope(envelopeText);
  if (envelope.payloadType !== STATEMENT_PAYLOAD_TYPE) {
    throw new UntrustedError(`its signature covers a ${JSON.stringify(envelope.payloadType)}, not a clip archive statement`);
  }
  const signed = preAuthEncoding(envelope.payloadType, envelope.payload);
  let keyId: string | undefined;
  for (const sig of envelope.signatures) {
    const candidates = sig.keyid === '' ? keys : keys.filter((k) => k.keyId === sig.keyid);
    const match = candidates.find((k) => verifyBytes(k, signed, sig.sig));
    if (match) {
      keyId = match.keyId;
      break;
    }
  }
  if (keyId === undefined) {
    const named = envelope.signatures.map((s) => s.keyid || '(no key ID)').join(', ');
    throw new UntrustedError(`no signature verifies against a trusted key (signed by ${named})`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(envelope.payload.toString('utf8'));
  } catch {
    throw new InvalidArgumentError('archive statement: not JSON');
  }
  const { _type, archive, layer, diffId, manifest } = (doc ?? {}) as Record<string, unknown>;
  if (_type !== STATEMENT_TYPE) throw new InvalidArgumentError(`archive statement: type ${JSON.stringify(_type)}`);
  const statement = checkStatement({ archive, layer, diffId, manifest } as ArchiveStatement);
  return { statement, keyId };
}
