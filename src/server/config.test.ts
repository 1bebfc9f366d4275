import { describe, expect, it } from "vitest";
import { resolveServerConfig } from "./config.js";

const required = { small: "small.gguf", large: "openai:http://h/v1#m", router: "router.json", budget: 0.2 };

describe("serve settings: the shared budget store", () => {
  it("takes a Redis URL, a namespace, a time bound and a TTL, with their defaults", () => {
    const config = resolveServerConfig({ ...required, "budget-store": "redis://10.0.0.7:6379/2" }, {});
    expect(config).toMatchObject({
      budgetStore: "redis://10.0.0.7:6379/2",
      budgetStoreNamespace: "default",
      budgetStoreTimeoutMs: 50,
      budgetStoreTtlSeconds: 604_800,
    });
    expect(resolveServerConfig(required, {}).budgetStore).toBeUndefined();
  });

  it("names the key of a bad value, in the file or as a flag", () => {
    expect(() =>
      resolveServerConfig({ ...required, "budget-store": "http://h:6379" }, {}, "serve.yaml"),
    ).toThrow(/budget-store: must be a Redis URL: redis:\/\/HOST:PORT\[\/DB\]/);
    expect(() => resolveServerConfig(required, { "budget-store-namespace": "a{b}" })).toThrow(
      /--budget-store-namespace: must be 1 to 64 letters, digits, dots, dashes or underscores/,
    );
    expect(() => resolveServerConfig(required, { "budget-store-timeout-ms": 0 })).toThrow(
      /--budget-store-timeout-ms: must be positive/,
    );
  });
});

describe("serve settings: budget units and prices", () => {
  it("reads the unit, both models' prices and the output-length prior", () => {
    const config = resolveServerConfig(
      {
        ...required,
        "budget-unit": "cost",
        "large-input-price": 0.5,
        "large-output-price": 1.5,
        "small-input-price": 0.01,
        "small-output-price": 0.02,
      },
      {},
    );
    expect(config).toMatchObject({
      budgetUnit: "cost",
      largePrices: { input: 0.5, output: 1.5 },
      smallPrices: { input: 0.01, output: 0.02 },
      outputTokensPerCharacter: 0.3,
    });
    expect(resolveServerConfig(required, {}).budgetUnit).toBe("requests");
  });

  it("names the missing or bad price", () => {
    expect(() => resolveServerConfig({ ...required, "budget-unit": "cost" }, {}, "serve.yaml")).toThrow(
      /serve\.yaml: large-input-price: is required when budget-unit is cost/,
    );
    expect(() => resolveServerConfig(required, { "large-input-price": 1 })).toThrow(
      /--large-output-price: is required with the large model's other price/,
    );
    expect(() =>
      resolveServerConfig(required, {
        "budget-unit": "cost",
        "large-input-price": 0,
        "large-output-price": 0,
      }),
    ).toThrow(/--large-input-price: the large model's prices are both 0/);
    expect(() => resolveServerConfig(required, { "small-output-price": -1 })).toThrow(
      /--small-output-price: must be a price ≥ 0/,
    );
    expect(() => resolveServerConfig(required, { "budget-unit": "dollars" })).toThrow(/--budget-unit: /);
  });
});

describe("serve settings: batches and the queue", () => {
  it("bounds a batch by the queue it must fit in whole", () => {
    expect(resolveServerConfig(required, {})).toMatchObject({ maxBatchSize: 64, queueSize: 256 });
    // Unset, the batch bound follows a smaller queue rather than refusing it.
    expect(resolveServerConfig(required, { "queue-size": 3 })).toMatchObject({
      maxBatchSize: 3,
      queueSize: 3,
    });
    expect(resolveServerConfig(required, { "queue-size": 8, "max-batch-size": 8 }).maxBatchSize).toBe(8);
    // Set above the queue, every batch that large would get a 429 forever: refused at start.
    expect(() => resolveServerConfig(required, { "queue-size": 3, "max-batch-size": 4 })).toThrow(
      /--max-batch-size: is 4, above queue-size 3: a batch takes one queue place per text/,
    );
    expect(() =>
      resolveServerConfig({ ...required, "queue-size": 3, "max-batch-size": 64 }, {}, "serve.yaml"),
    ).toThrow(/max-batch-size: is 64, above queue-size 3/);
  });
});
