/**
 * Error classes shared by every layer. Callers decide on `instanceof` / `code` / `isRetryable`,
 * never on message text.
 */

/** Base class of every error routelmt throws on purpose. */
export class RoutelmtError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Bad command-line usage or configuration: the CLI prints the message and exits with code 2. */
export class UsageError extends RoutelmtError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("RLMT_ERR_USAGE", message, options);
  }
}

/**
 * Bad input data. `file` and `line` (1-based) locate it so the user can fix it; the message
 * rendered by `toString`-like helpers is `file:line: message`.
 */
export class InputError extends RoutelmtError {
  readonly file: string | undefined;
  readonly line: number | undefined;
  constructor(message: string, where: { file?: string; line?: number } = {}, options?: { cause?: unknown }) {
    const prefix = where.file ? `${where.file}${where.line !== undefined ? `:${where.line}` : ""}: ` : "";
    super("RLMT_ERR_INPUT", `${prefix}${message}`, options);
    this.file = where.file;
    this.line = where.line;
  }
}

/** A remote engine or service (translator, metric) answered with an error or an unusable body. */
export class EngineCallError extends RoutelmtError {
  readonly engine: string;
  readonly status: number | undefined;
  readonly isRetryable: boolean;
  readonly retryAfterMs: number | undefined;
  constructor(
    engine: string,
    message: string,
    details: { status?: number; isRetryable?: boolean; retryAfterMs?: number; cause?: unknown } = {},
  ) {
    super("RLMT_ERR_ENGINE", `${engine}: ${message}`, { cause: details.cause });
    this.engine = engine;
    this.status = details.status;
    this.isRetryable = details.isRetryable ?? isRetryableStatus(details.status);
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** A remote engine did not answer within its per-request timeout. Retryable. */
export class EngineTimeoutError extends EngineCallError {
  constructor(engine: string, timeoutMs: number, options?: { cause?: unknown }) {
    super(engine, `no answer within ${timeoutMs} ms`, { isRetryable: true, cause: options?.cause });
  }
}

/** A model or router does not support what was asked of it (checked before any work runs). */
export class UnsupportedError extends RoutelmtError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("RLMT_ERR_UNSUPPORTED", message, options);
  }
}

/** Statuses worth retrying: request timeout, conflict, rate limit, server errors. */
export function isRetryableStatus(status: number | undefined): boolean {
  if (status === undefined) return true; // network failure: no status at all
  return status === 408 || status === 409 || status === 429 || status >= 500;
}

/**
 * Node file-system error codes that mean the path cannot be used as given — something the user
 * fixes (another path, permissions, space), not a bug — with the words the message uses.
 */
const PATH_PROBLEMS: Readonly<Record<string, string>> = {
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENOENT: "no such file or directory",
  EEXIST: "already exists",
  ENOTDIR: "not a directory, or a parent on the path is a file",
  EISDIR: "is a directory",
  EROFS: "read-only file system",
  ENAMETOOLONG: "name too long",
  ELOOP: "too many levels of symbolic links",
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
};

const SYSCALL_ACTIONS: Readonly<Record<string, string>> = {
  mkdir: "cannot create directory",
  open: "cannot open",
  read: "cannot read",
  write: "cannot write",
  rename: "cannot write",
  stat: "cannot read",
  lstat: "cannot read",
  scandir: "cannot list directory",
  unlink: "cannot remove",
};

/**
 * The one-line InputError (exit code 2) for a Node file-system error on a path the user gave, e.g.
 * `out/x: cannot create directory (ENOTDIR: not a directory, …)`; undefined when `error` is not such
 * an error (then it stays an unexpected failure).
 * @param file the path to name instead of the error's own (e.g. the output a temporary file stands for).
 * @param action what was being done, instead of the one derived from the failing system call.
 */
export function pathErrorOf(error: unknown, file?: string, action?: string): InputError | undefined {
  if (error instanceof RoutelmtError || !(error instanceof Error)) return undefined;
  const { code, path, syscall } = error as NodeJS.ErrnoException;
  const problem = code === undefined ? undefined : PATH_PROBLEMS[code];
  const named = file ?? path;
  if (problem === undefined || named === undefined) return undefined;
  const doing = action ?? (syscall !== undefined ? SYSCALL_ACTIONS[syscall] : undefined) ?? "cannot use";
  return new InputError(`${doing} (${code}: ${problem})`, { file: named }, { cause: error });
}
