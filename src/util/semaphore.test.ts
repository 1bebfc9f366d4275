import { describe, expect, it } from "vitest";
import { sleep } from "./retry.js";
import { Semaphore } from "./semaphore.js";

describe("Semaphore", () => {
  it("never lets more than `limit` tasks run at once, and runs them all", async () => {
    const semaphore = new Semaphore(3);
    let running = 0;
    let maxRunning = 0;
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, index) =>
        semaphore.run(async () => {
          running++;
          maxRunning = Math.max(maxRunning, running);
          await sleep(5 + (index % 3) * 3);
          running--;
          return index * 2;
        }),
      ),
    );
    expect(maxRunning).toBe(3);
    expect(results).toEqual([0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
    expect(semaphore.active).toBe(0);
    expect(semaphore.waiting).toBe(0);
  });

  it("serves waiters in arrival order", async () => {
    const semaphore = new Semaphore(1);
    const release = await semaphore.acquire();
    const order: number[] = [];
    const waiters = [1, 2, 3].map((n) => semaphore.run(async () => void order.push(n)));
    expect(semaphore.waiting).toBe(3);
    release();
    release(); // a second call must not free a second slot
    await Promise.all(waiters);
    expect(order).toEqual([1, 2, 3]);
    expect(semaphore.active).toBe(0);
  });

  it("releases the slot when a task throws", async () => {
    const semaphore = new Semaphore(1);
    await expect(semaphore.run(async () => Promise.reject(new Error("task failed")))).rejects.toThrow(
      "task failed",
    );
    expect(semaphore.active).toBe(0);
  });

  it("drops an aborted waiter without taking a slot", async () => {
    const semaphore = new Semaphore(1);
    const release = await semaphore.acquire();
    const controller = new AbortController();
    const waiting = semaphore.acquire(controller.signal);
    controller.abort(new Error("not needed"));
    await expect(waiting).rejects.toThrow("not needed");
    expect(semaphore.waiting).toBe(0);
    release();
    expect(semaphore.active).toBe(0);
  });

  it("rejects a non-positive limit", () => {
    expect(() => new Semaphore(0)).toThrow(RangeError);
    expect(() => new Semaphore(1.5)).toThrow(RangeError);
  });
});
