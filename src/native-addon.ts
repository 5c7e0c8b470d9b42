/**
 * Loading clip's native addons (built by `npm run build:native` into dist/, next to the modules that load
 * them): each is required on first use, and a missing or broken build is an InternalError that says so.
 */
import { InternalError } from './errors';

/** A function that loads the addon `file` (named `what` in errors) on its first call and returns it. */
export function lazyAddon<T>(file: string, what: string): () => T {
  let addon: T | undefined;
  return () => {
    if (addon === undefined) {
      try {
        addon = require(file) as T;
      } catch (err) {
        throw new InternalError(`${what} ${file}: cannot load it (was npm run build run?)`, { cause: err });
      }
    }
    return addon;
  };
}
