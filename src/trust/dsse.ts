/**
 * DSSE, the Dead Simple Signing Envelope (github.com/secure-systems-lab/dsse, "envelope.md" and
 * "protocol.md"): a payload, its type, and signatures over PAE(type, payload). Signing the pre-auth
 * encoding, not the JSON, means nothing about the envelope's JSON form needs to be canonical.
 *
 *   {"payload": "<base64>", "payloadType": "<type>", "signatures": [{"keyid": "<id>", "sig": "<base64>"}]}
 *   PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body   (LEN: decimal byte count)
 */
import { InvalidArgumentError } from '../errors';

export interface DsseSignature {
  keyid: string;
  sig: Buffer;
}

export interface DsseEnvelope {
  payloadType: string;
  payload: Buffer;
  signatures: DsseSignature[];
}

/** An envelope larger than this is refused before it is parsed (one statement and a few signatures). */
export const MAX_ENVELOPE_BYTES = 16 << 10;
/** Signatures looked at per envelope. */
export const MAX_SIGNATURES = 8;

/** The bytes a DSSE signature covers. */
export function preAuthEncoding(payloadType: string, payload: Buffer): Buffer {
  const type = Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `), type, Buffer.from(` ${payload.length} `), payload]);
}

export function encodeEnvelope(envelope: DsseEnvelope): string {
  return JSON.stringify({
    payload: envelope.payload.toString('base64'),
    payloadType: envelope.payloadType,
    signatures: envelope.signatures.map((s) => ({ keyid: s.keyid, sig: s.sig.toString('base64') })),
  });
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function base64Field(value: unknown, what: string): Buffer {
  if (typeof value !== 'string' || value.length % 4 !== 0 || !BASE64.test(value)) {
    throw new InvalidArgumentError(`signature envelope: ${what} is not base64`);
  }
  return Buffer.from(value, 'base64');
}

/** Parses an envelope; throws InvalidArgumentError for anything malformed or too large. */
export function parseEnvelope(text: string): DsseEnvelope {
  if (Buffer.byteLength(text, 'utf8') > MAX_ENVELOPE_BYTES) {
    throw new InvalidArgumentError(`signature envelope: larger than ${MAX_ENVELOPE_BYTES} bytes`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new InvalidArgumentError('signature envelope: not JSON');
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) throw new InvalidArgumentError('signature envelope: not an object');
  const { payload, payloadType, signatures } = doc as Record<string, unknown>;
  if (typeof payloadType !== 'string' || payloadType === '') throw new InvalidArgumentError('signature envelope: no payloadType');
  if (!Array.isArray(signatures) || signatures.length === 0) throw new InvalidArgumentError('signature envelope: no signatures');
  if (signatures.length > MAX_SIGNATURES) throw new InvalidArgumentError(`signature envelope: more than ${MAX_SIGNATURES} signatures`);
  return {
    payloadType,
    payload: base64Field(payload, 'payload'),
    signatures: signatures.map((s: unknown, i) => {
      if (s === null || typeof s !== 'object') throw new InvalidArgumentError(`signature envelope: signature ${i} is not an object`);
      const { keyid, sig } = s as Record<string, unknown>;
      if (keyid !== undefined && typeof keyid !== 'string') throw new InvalidArgumentError(`signature envelope: signature ${i} has a bad keyid`);
      return { keyid: keyid ?? '', sig: base64Field(sig, `signature ${i}`) };
    }),
  };
}
