import { describe, expect, it } from "vitest";
import { linkedSignal } from "./linked-signal.js";

describe("linkedSignal", () => {
  it("follows its parent's abort with the parent's reason", () => {
    const parent = new AbortController();
    const linked = linkedSignal(parent.signal);
    expect(linked.signal.aborted).toBe(false);
    const reason = new Error("client gone");
    parent.abort(reason);
    expect(linked.signal.reason).toBe(reason);
    expect(linkedSignal(parent.signal).signal.reason).toBe(reason);
  });

  it("times out with a TimeoutError, and not once disposed", async () => {
    const linked = linkedSignal(new AbortController().signal, 20);
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(linked.signal.reason).toBeInstanceOf(DOMException);
    expect((linked.signal.reason as DOMException).name).toBe("TimeoutError");

    const disposed = linkedSignal(undefined, 20);
    disposed.dispose();
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(disposed.signal.aborted).toBe(false);
  });

  it("no longer follows its parent once disposed, and can be aborted itself", () => {
    const parent = new AbortController();
    const linked = linkedSignal(parent.signal);
    linked.dispose();
    parent.abort(new Error("late"));
    expect(linked.signal.aborted).toBe(false);
    const reason = new Error("shutdown");
    linked.abort(reason);
    expect(linked.signal.reason).toBe(reason);
  });
});
