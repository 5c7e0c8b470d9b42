import { InvalidArgumentError } from '../errors';

/**
 * A clip archive that cannot be encoded or decoded: not a clip archive, a format version this reader does
 * not know, a truncated or corrupted file, or content that breaks the format's rules. `detail` is the
 * message without the "clip archive[ FILE]: " prefix.
 */
export class ArchiveFormatError extends InvalidArgumentError {
  readonly detail: string;

  constructor(detail: string, options?: { cause?: unknown; file?: string }) {
    super(`clip archive${options?.file ? ` ${options.file}` : ''}: ${detail}`, { cause: options?.cause });
    this.detail = detail;
  }
}
