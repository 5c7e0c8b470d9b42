/**
 * One run of a piece of work per key, shared by every caller that asks for it while it runs. A caller that
 * gives up (its signal aborts) stops waiting at once; the work itself is aborted only when every caller
 * waiting on it has given up, so one cancelled Prepare never cancels a build another one still needs.
 */
interface Task<T> {
  promise: Promise<T>;
  controller: AbortController;
  waiters: number;
}

export class SharedTasks<T> {
  private readonly tasks = new Map<string, Task<T>>();

  /** Whether work for `key` is running. */
  has(key: string): boolean {
    return this.tasks.has(key);
  }

  run(key: string, work: (signal: AbortSignal) => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    let task = this.tasks.get(key);
    if (!task) {
      const controller = new AbortController();
      const created: Task<T> = { controller, waiters: 0, promise: Promise.resolve().then(() => work(controller.signal)) };
      created.promise
        .finally(() => {
          if (this.tasks.get(key) === created) this.tasks.delete(key);
        })
        .catch(() => undefined);
      this.tasks.set(key, created);
      task = created;
    }
    const shared = task;
    shared.waiters++;
    if (!signal) return shared.promise;
    return new Promise<T>((resolve, reject) => {
      const onAbort = (): void => {
        shared.waiters--;
        if (shared.waiters === 0) {
          shared.controller.abort(signal.reason);
          if (this.tasks.get(key) === shared) this.tasks.delete(key);
        }
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      shared.promise.then(
        (value) => {
          signal.removeEventListener('abort', onAbort);
          resolve(value);
        },
        (err: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(err);
        },
      );
    });
  }
}
