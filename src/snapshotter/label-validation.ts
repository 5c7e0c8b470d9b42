import { InvalidArgumentError } from '../errors';
import { MAX_LABEL_BYTES } from './labels';
import { Labels } from './types';

/** Rejects labels containerd would reject: an empty key, or key plus value longer than 4096 bytes. */
export function validateLabels(labels: Labels): void {
  for (const [key, value] of Object.entries(labels)) {
    if (key === '') throw new InvalidArgumentError('label key must not be empty');
    const size = Buffer.byteLength(key) + Buffer.byteLength(value);
    if (size > MAX_LABEL_BYTES) {
      throw new InvalidArgumentError(`label key and value length (${size} bytes) greater than maximum size (${MAX_LABEL_BYTES} bytes), key: ${key.slice(0, 64)}`);
    }
  }
}
