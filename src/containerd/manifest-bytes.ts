/**
 * The exact bytes of a manifest the registry client has parsed, which containerd's content store needs
 * (a blob is stored under the sha256 of its bytes).
 *
 * Stopgap: RegistryClient.resolve() and fetchManifest() return the parsed document but not the bytes it
 * was parsed from. Until they do, the document is serialised again the ways image tools write manifests (compact as
 * Go's json.Marshal and JavaScript write it, or indented by 2, 3 or a tab; Go's escaping of <, > and &;
 * with or without a final newline) and the variant whose sha256 is the manifest digest is taken. Nothing
 * unverified is ever returned: when no variant matches, the pull fails with a clear error.
 */
import { createHash } from 'node:crypto';
import { NotImplementedError } from '../errors';

const INDENTS: Array<string | number | undefined> = [undefined, 3, 2, '\t'];

function goEscape(json: string): string {
  return json.replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** The bytes of `document` whose digest is `digest`; `what` names the manifest in the error. */
export function manifestBytes(document: unknown, digest: string, what: string): Buffer {
  for (const indent of INDENTS) {
    const plain = JSON.stringify(document, null, indent);
    for (const text of new Set([plain, goEscape(plain)])) {
      for (const candidate of [text, `${text}\n`]) {
        const bytes = Buffer.from(candidate, 'utf8');
        if (sha256(bytes) === digest) return bytes;
      }
    }
  }
  throw new NotImplementedError(
    `${what}: cannot store manifest ${digest} in containerd: the registry client does not return the manifest's exact bytes and no known serialisation matches its digest`,
  );
}
