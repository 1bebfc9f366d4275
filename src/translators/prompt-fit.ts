/**
 * Which requests do not fit a model's context, found before anything is decoded: every prompt is
 * tokenized with each loaded model, so one long line is reported with all the others at start-up
 * instead of aborting a run hours in.
 * @module
 */
import { setMaxListeners } from "node:events";
import { InputError, RoutelmtError } from "../errors/index.js";
import type { Translation, TranslationRequest, Translator } from "./types.js";

/**
 * What an engine needs to check a prompt's length without running it; the in-process GGUF engines
 * have it. Remote (`openai:`) engines tokenize on their server and do not.
 */
export interface PromptTokenCounter {
  /** Token cells of one sequence: a request needs its prompt tokens plus its maximum new tokens. */
  readonly contextSize: number;
  /** The exact token ids the request's prompt is evaluated as. */
  tokenizePrompt(request: TranslationRequest): readonly number[];
}

/** The translator's token counter, or undefined when it cannot count tokens locally. */
export function promptTokenCounterOf(translator: Translator): PromptTokenCounter | undefined {
  const candidate = translator as Translator & Partial<PromptTokenCounter>;
  return typeof candidate.tokenizePrompt === "function" && typeof candidate.contextSize === "number"
    ? (candidate as Translator & PromptTokenCounter)
    : undefined;
}

/** One model a request does not fit. */
export interface PromptOverflow {
  /** How the caller named the model (e.g. `small`). */
  model: string;
  promptTokens: number;
  /** The most prompt tokens that fit: the context size minus the maximum new tokens (and any extra). */
  maxPromptTokens: number;
  contextSize: number;
}

/** A request that does not fit at least one model. */
export interface TooLongPrompt {
  /** Index of the request in the list checked. */
  index: number;
  /** Every model it does not fit, in the order the models were given. */
  overflows: PromptOverflow[];
}

/** Result of {@link findTooLongPrompts}. */
export interface PromptFitReport {
  /** Requests that do not fit, in request order. */
  tooLong: TooLongPrompt[];
  /** Names of the models that could not be checked (remote engines: their server decides). */
  unchecked: string[];
}

/** Where a request came from: named in messages about it. */
export interface RequestOrigin {
  file: string;
  /** 1-based line. */
  line: number;
  id: string;
}

/**
 * Tokenizes every request with every model that can count tokens locally and returns those whose
 * prompt plus `maxTokens` new tokens (plus the model's `extraTokens`) exceeds that model's context.
 * @param models `extraTokens`: cells a model needs beyond the prompt and `maxTokens` — a large
 *   model that then scores the small translation evaluates the prompt, up to `maxTokens` answer
 *   tokens and reads one more distribution, for the end token.
 * @param locate where request `index` came from, named when tokenizing it fails.
 * @throws InputError naming the request's file and line when a prompt cannot be tokenized.
 */
export function findTooLongPrompts(
  models: readonly { name: string; translator: Translator; extraTokens?: number }[],
  requests: readonly TranslationRequest[],
  maxTokens: number,
  locate: (index: number) => RequestOrigin,
): PromptFitReport {
  const overflowsByIndex = new Map<number, PromptOverflow[]>();
  const unchecked: string[] = [];
  for (const { name, translator, extraTokens = 0 } of models) {
    const counter = promptTokenCounterOf(translator);
    if (!counter) {
      unchecked.push(name);
      continue;
    }
    const maxPromptTokens = counter.contextSize - maxTokens - extraTokens;
    requests.forEach((request, index) => {
      let promptTokens: number;
      try {
        promptTokens = counter.tokenizePrompt(request).length;
      } catch (error) {
        throw errorAtOrigin(error, locate(index));
      }
      if (promptTokens <= maxPromptTokens) return;
      const overflows = overflowsByIndex.get(index) ?? [];
      overflows.push({ model: name, promptTokens, maxPromptTokens, contextSize: counter.contextSize });
      overflowsByIndex.set(index, overflows);
    });
  }
  const tooLong = [...overflowsByIndex]
    .sort(([a], [b]) => a - b)
    .map(([index, overflows]) => ({ index, overflows }));
  return { tooLong, unchecked };
}

/** `in.jsonl:3: id "b": 438 prompt tokens on small, at most 250 fit (context 256)`: one line per request. */
export function describeTooLongPrompt(overflows: readonly PromptOverflow[], origin: RequestOrigin): string {
  const parts = overflows.map(
    (overflow) =>
      `${overflow.promptTokens} prompt tokens on ${overflow.model}, at most ${overflow.maxPromptTokens} fit (context ${overflow.contextSize})`,
  );
  return `${origin.file}:${origin.line}: id ${JSON.stringify(origin.id)}: ${parts.join("; ")}`;
}

/**
 * The error that refuses a run up front, listing every request that does not fit (one per line).
 * @param skipFlag the flag that leaves such requests out instead.
 */
export function tooLongPromptsError(
  tooLong: readonly TooLongPrompt[],
  total: number,
  maxTokens: number,
  locate: (index: number) => RequestOrigin,
  skipFlag: string,
): InputError {
  const lines = tooLong.map((prompt) => `  ${describeTooLongPrompt(prompt.overflows, locate(prompt.index))}`);
  return new InputError(
    `${tooLong.length} of ${total} segments do not fit the model context with ${maxTokens} new tokens (--max-tokens); shorten or remove them, lower --max-tokens, or pass ${skipFlag} to leave them out:\n${lines.join("\n")}`,
  );
}

/** Says that --skip-too-long cannot apply to models that count tokens on their server. */
export function uncheckedModelsNote(unchecked: readonly string[]): string {
  return `${unchecked.join(", ")} counts tokens on its server, so prompt lengths cannot be checked here; a prompt the server refuses stops the run, naming its line`;
}

/** Engine statuses that mean the server refused this request's content (e.g. a prompt over its context). */
const REFUSED_REQUEST_STATUSES = new Set([400, 413, 422]);

/**
 * An error about one request, located at the line it came from: a request the engine refused (our
 * own input checks, or HTTP 400/413/422 from a remote engine — the only way to learn that a prompt
 * is too long for a server's model) is bad input (exit code 2); any other failure of ours keeps its
 * code but says where the run stopped.
 */
export function errorAtOrigin(error: unknown, origin: RequestOrigin): Error {
  if (!(error instanceof RoutelmtError)) return error instanceof Error ? error : new Error(String(error));
  const idPrefix = `id ${JSON.stringify(origin.id)}: `;
  const status = (error as RoutelmtError & { status?: number }).status;
  if (
    (error instanceof InputError && error.file === undefined) ||
    (status !== undefined && REFUSED_REQUEST_STATUSES.has(status))
  ) {
    return new InputError(`${idPrefix}${error.message}`, origin, { cause: error });
  }
  if (error instanceof InputError) return error;
  return new RoutelmtError(error.code, `${origin.file}:${origin.line}: ${idPrefix}${error.message}`, {
    cause: error,
  });
}

/**
 * Translates each request on its own call, all in flight at once (the engine batches or queues
 * them as it would one call), so a failure names the request's line. The first failure aborts the
 * others and is thrown, located, once they have all stopped.
 */
export async function translateEach(
  translator: Translator,
  requests: readonly TranslationRequest[],
  maxTokens: number,
  locate: (index: number) => RequestOrigin,
): Promise<Translation[]> {
  const abort = new AbortController();
  // One listener per request in flight.
  setMaxListeners(0, abort.signal);
  let firstFailure: Error | undefined;
  const settled = await Promise.allSettled(
    requests.map(async (request, index) => {
      try {
        const [translation] = await translator.translate([request], { maxTokens, signal: abort.signal });
        if (!translation) throw new Error(`${translator.engine} returned no translation`);
        return translation;
      } catch (error) {
        // Later failures are mostly the abort itself; the first one is the cause.
        firstFailure ??= errorAtOrigin(error, locate(index));
        abort.abort();
        throw error;
      }
    }),
  );
  if (firstFailure) throw firstFailure;
  return settled.map((result) => (result as PromiseFulfilledResult<Translation>).value);
}
