import { Command, CommanderError } from "commander";
import { pathErrorOf, RoutelmtError, UsageError } from "../errors/index.js";
import { VERSION } from "../version.js";
import { registerCollect } from "./commands/collect.js";
import { registerDemo } from "./commands/demo.js";
import { registerEval } from "./commands/eval.js";
import { registerImport } from "./commands/import.js";
import { registerScore } from "./commands/score.js";
import { registerServe } from "./commands/serve.js";
import { registerTrain } from "./commands/train.js";
import { registerTranslate } from "./commands/translate.js";
import { type CliIo, processIo } from "./io.js";

/** Builds the command tree. Each command registers itself and reports its exit code through `setExitCode`. */
export function buildProgram(io: CliIo): Command {
  const program = new Command("routelmt")
    .description("Hybrid LLM translation with learned, budgeted routing")
    .version(VERSION)
    .exitOverride()
    .showSuggestionAfterError(true)
    .configureOutput({
      writeOut: (text) => io.stdout(text),
      // Commander's own usage errors: printed by runCli as one line, so swallow here.
      writeErr: () => {},
      outputError: () => {},
    });
  registerScore(program, io);
  registerTranslate(program, io);
  registerDemo(program, io);
  registerCollect(program, io);
  registerImport(program, io);
  registerTrain(program, io);
  registerEval(program, io);
  registerServe(program, io);
  for (const command of program.commands) {
    command.exitOverride().configureOutput({
      writeOut: (text) => io.stdout(text),
      writeErr: () => {},
      outputError: () => {},
    });
  }
  return program;
}

/**
 * Runs the CLI and returns the process exit code: 0 success, 2 usage or input error (one line on
 * stderr, never a stack trace), 1 an unexpected failure (message and stack).
 */
export async function runCli(argv: string[], io: CliIo = processIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (error) {
    // No command given: commander "displays" the help on the swallowed error stream; show it.
    if (error instanceof CommanderError && error.code === "commander.help" && error.exitCode !== 0) {
      io.stderr(program.helpInformation());
      return 2;
    }
    return reportError(error, io);
  }
}

function reportError(error: unknown, io: CliIo): number {
  if (error instanceof CommanderError) {
    // --help and --version end through exitOverride with exit code 0.
    if (error.exitCode === 0) return 0;
    io.stderr(`routelmt: ${error.message.replace(/^error: /, "").split("\n")[0]}\n`);
    return 2;
  }
  if (error instanceof UsageError || (error instanceof RoutelmtError && error.code === "RLMT_ERR_INPUT")) {
    io.stderr(`routelmt: ${error.message}\n`);
    return 2;
  }
  if (error instanceof RoutelmtError) {
    io.stderr(`routelmt: ${error.message}\n`);
    return 1;
  }
  // Commands let Node's file-system errors through; one naming a path the user gave is theirs to fix.
  const pathError = pathErrorOf(error);
  if (pathError) {
    io.stderr(`routelmt: ${pathError.message}\n`);
    return 2;
  }
  io.stderr(
    `routelmt: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  return 1;
}
