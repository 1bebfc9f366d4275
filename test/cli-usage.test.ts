import { describe, expect, it } from "vitest";
import { runCliCaptured as run } from "./helpers/cli.js";

describe("runCli", () => {
  it("without a command prints the usage on stderr and exits 2", async () => {
    const { code, stdout, stderr } = await run([]);
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr).toMatch(/^Usage: routelmt \[options\] \[command\]/);
    expect(stderr).toMatch(/\n {2}collect /);
    expect(stderr).not.toMatch(/outputHelp/);
  });

  it("with --help prints the usage on stdout and exits 0; an unknown command is one line, exit 2", async () => {
    const help = await run(["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: routelmt/);
    const unknown = await run(["bogus"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^routelmt: unknown command 'bogus'\n$/);
  });
});
