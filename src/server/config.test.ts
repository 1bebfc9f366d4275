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
