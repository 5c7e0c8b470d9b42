/**
 * Long loops over an archive (decoding, validating 100k+ entries) are written as generators that yield
 * every so often. Run synchronously they cost nothing extra; run in slices they give the event loop back
 * every few milliseconds, so a daemon serving FUSE reads and gRPC calls never stalls behind one archive
 * (docs/limits.md, "Event loop").
 */
import { setImmediate as nextTurn } from 'node:timers/promises';

/** Work that yields between pieces and returns T. */
export type Steps<T> = Generator<void, T, void>;

/** Items (entries, fields) handled between two yields. */
export const ITEMS_PER_STEP = 256;

/** Runs `steps` to the end at once. */
export function runToEnd<T>(steps: Steps<T>): T {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
  }
}

/** Runs `steps`, handing the event loop back whenever a slice has run for `sliceMs`. */
export async function runInSlices<T>(steps: Steps<T>, sliceMs = 10): Promise<T> {
  let until = performance.now() + sliceMs;
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    if (performance.now() >= until) {
      await nextTurn();
      until = performance.now() + sliceMs;
    }
  }
}
