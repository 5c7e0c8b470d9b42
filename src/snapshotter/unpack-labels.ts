/**
 * Unpack Prepares that name only their target chain ID (nerdctl's pull, CRI without snapshot
 * annotations, a transfer service without the remote-snapshot export): the labels CRI would have sent are
 * looked up by a LayerLocator (containerd's content store), so that the layer can still be served lazily.
 */
import type { Logger } from 'winston';
import type { LayerLocator } from './remote-layers';
import type { Labels } from './types';

/**
 * A backend key of containerd's unpack snapshots: `<namespace>/<sequence>/extract-<unique> <chain ID>`
 * (containerd's metadata store prefixes the client's key; snapshots.UnpackKeyFormat is "extract-%s %s").
 */
const UNPACK_KEY = /^([A-Za-z0-9][A-Za-z0-9._-]*)\/[0-9]+\/extract-[^ ]* sha256:[0-9a-f]{64}$/;

/**
 * The labels of the Prepare of `key`, completed with what the locator finds for chain ID `target`, or
 * unchanged (not an unpack key, or nothing found). The namespace is the one containerd sent with the call,
 * else the one its metadata store puts in front of every key (`<namespace>/<n>/…`).
 */
export async function completeUnpackLabels(
  locator: LayerLocator,
  key: string,
  target: string,
  labels: Labels,
  logger: Pick<Logger, 'debug'>,
  signal?: AbortSignal,
  namespace?: string,
): Promise<Labels> {
  const unpack = UNPACK_KEY.exec(key);
  if (!unpack) return labels;
  if (!namespace) logger.debug(`Prepare ${key}: no containerd-namespace metadata, namespace ${unpack[1]} taken from the key`);
  const found = await locator.locate(target, namespace || unpack[1]!, signal);
  return found ? { ...found, ...labels } : labels;
}
