/** Chain IDs (OCI image-spec): the identity of a stack of layers, and the name of its snapshot. */
import { createHash } from 'node:crypto';

/** The chain ID of a layer with `diffId` on top of the chain `below` (none: the layer is the bottom one). */
export function chainIdOf(below: string | undefined, diffId: string): string {
  return below === undefined ? diffId : `sha256:${createHash('sha256').update(`${below} ${diffId}`).digest('hex')}`;
}

/** ChainID(L0) = DiffID(L0); ChainID(L0…Ln) = sha256(ChainID(L0…Ln−1) + " " + DiffID(Ln)). */
export function chainIds(diffIds: readonly string[]): string[] {
  const out: string[] = [];
  for (const diffId of diffIds) out.push(chainIdOf(out[out.length - 1], diffId));
  return out;
}
