/** An abort signal tied to another one, detachable: see {@link linkedSignal}. */
export interface LinkedSignal {
  readonly signal: AbortSignal;
  /** Aborts it now with `reason` (unless it already aborted). */
  abort(reason: unknown): void;
  /** Detaches it from its parent and stops its timer; call it once the work it guards is done. */
  dispose(): void;
}

/**
 * A signal that aborts when `parent` does (with the parent's reason) and, given `timeoutMs`, after
 * that long with a `TimeoutError` `DOMException`, as `AbortSignal.timeout` does. It is what
 * `AbortSignal.any([parent, AbortSignal.timeout(ms)])` gives, without what that costs on a server's
 * hot path: `any` registers its result with every source until garbage collection collects it, so a
 * long-lived source (the shutdown signal every request links to) holds an entry per request until
 * the collector catches up; here `dispose()` detaches at once.
 */
export function linkedSignal(parent: AbortSignal | undefined, timeoutMs?: number): LinkedSignal {
  const controller = new AbortController();
  const relay = () => controller.abort(parent?.reason);
  let timer: ReturnType<typeof setTimeout> | undefined;
  if (parent?.aborted) controller.abort(parent.reason);
  else {
    parent?.addEventListener("abort", relay, { once: true });
    if (timeoutMs !== undefined) {
      timer = setTimeout(
        () => controller.abort(new DOMException("The operation was aborted due to timeout", "TimeoutError")),
        timeoutMs,
      );
    }
  }
  return {
    signal: controller.signal,
    abort: (reason) => controller.abort(reason),
    dispose: () => {
      clearTimeout(timer);
      parent?.removeEventListener("abort", relay);
    },
  };
}
