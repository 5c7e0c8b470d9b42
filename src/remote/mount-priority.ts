/**
 * Layer mounts before start-up bundles. A Prepare that mounts a layer (checking its published archive,
 * storing it, building the FUSE table, mounting) is on containerd's pull path; a start-up bundle (inflating
 * and hashing megabytes) is not, yet both want the same cores and thread pool. While a mount is under way,
 * bundle work waits between chunks; it goes on as soon as no mount is, or once every mount under way has
 * held it for `maxHoldMs` (a layer indexed locally on Prepare can take minutes: bundles do not wait for it).
 */

/** How long one mount may hold bundle work back (default). */
export const DEFAULT_MAX_HOLD_MS = 1_000;

export class MountPriority {
  /** Start times (performance.now()) of the mounts under way. */
  private readonly active = new Set<{ started: number }>();
  private readonly changed = new Set<() => void>();

  constructor(private readonly maxHoldMs = DEFAULT_MAX_HOLD_MS) {}

  /** A mount starts; call the function returned when it is done (more than once is harmless). */
  begin(): () => void {
    const mount = { started: performance.now() };
    this.active.add(mount);
    return () => {
      if (this.active.delete(mount)) for (const wake of [...this.changed]) wake();
    };
  }

  /** Whether bundle work should wait now. */
  get busy(): boolean {
    return this.holdUntil() !== undefined;
  }

  /** Resolves once no mount under way holds bundle work back. */
  async idle(): Promise<void> {
    for (let until = this.holdUntil(); until !== undefined; until = this.holdUntil()) {
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          clearTimeout(timer);
          this.changed.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, Math.max(1, until - performance.now()));
        this.changed.add(wake);
      });
    }
  }

  /**
   * The chunks of `source`, each passed on only when no mount holds bundle work back. The source itself is
   * started at once (a fetch goes on arriving in the socket's buffers meanwhile).
   */
  async *yielding<T>(source: AsyncIterable<T>): AsyncGenerator<T> {
    for await (const chunk of source) {
      if (this.busy) await this.idle();
      yield chunk;
    }
  }

  /** When the earliest-ending hold of the mounts under way ends; undefined when none holds. */
  private holdUntil(): number | undefined {
    const now = performance.now();
    let until: number | undefined;
    for (const { started } of this.active) {
      const end = started + this.maxHoldMs;
      if (end > now && (until === undefined || end < until)) until = end;
    }
    return until;
  }
}
