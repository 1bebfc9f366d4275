/**
 * Limits how many tasks run at once. Waiters are served first come, first served, so a long queue
 * cannot starve an early request.
 */
export class Semaphore {
  readonly limit: number;
  #active = 0;
  readonly #waiters: Array<() => void> = [];

  /** @param limit maximum concurrent holders; a positive integer. */
  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1)
      throw new RangeError(`semaphore limit must be a positive integer, got ${limit}`);
    this.limit = limit;
  }

  /** Holders right now. */
  get active(): number {
    return this.#active;
  }

  /** Callers waiting for a slot right now. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /**
   * Waits for a slot and returns its release function (calling it more than once has no further
   * effect). If `signal` aborts while waiting, rejects with its reason and takes no slot.
   */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    signal?.throwIfAborted();
    if (this.#active < this.limit) {
      this.#active++;
      return this.#releaser();
    }
    await new Promise<void>((resolve, reject) => {
      const grant = () => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        const index = this.#waiters.indexOf(grant);
        if (index >= 0) this.#waiters.splice(index, 1);
        reject(signal?.reason);
      };
      this.#waiters.push(grant);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
    // The releasing holder handed its slot over, so #active already counts us.
    return this.#releaser();
  }

  /** Runs `task` while holding a slot. */
  async run<T>(task: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const release = await this.acquire(signal);
    try {
      return await task();
    } finally {
      release();
    }
  }

  #releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiters.shift();
      if (next) next();
      else this.#active--;
    };
  }
}
