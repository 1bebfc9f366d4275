/** Runs the CLI from source (`node --import tsx src/cli/run.ts ...`); the published bin uses dist/. */
import { runCli } from "./main.js";

process.exitCode = await runCli(process.argv.slice(2));
