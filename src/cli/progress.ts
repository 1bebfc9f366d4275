import type { CliIo } from "./io.js";

export interface ProgressOptions {
  label: string;
  total: number;
  /** Items already done before this run (a resumed job): counted in the bar, not in the rate. */
  initial?: number;
  unit?: string;
  /** Seconds between plain lines when stderr is not a terminal. Defaults to 10. */
  plainIntervalSeconds?: number;
  now?: () => number;
}

/** Formats a duration in seconds as `1h02m`, `4m05s` or `12s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const whole = Math.round(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = whole % 60;
  if (h > 0) return `${h}h${String(m).padStart(2, "0")}m`;
  if (m > 0) return `${m}m${String(s).padStart(2, "0")}s`;
  return `${s}s`;
}

/**
 * Progress of a long job on stderr: a redrawn bar with rate and ETA on a terminal, plain periodic
 * lines otherwise (logs and CI), and always a final line.
 */
export class ProgressReporter {
  private done: number;
  private startedAt: number;
  private lastPlainAt: number;
  private readonly now: () => number;

  constructor(
    private readonly io: CliIo,
    private readonly options: ProgressOptions,
  ) {
    this.now = options.now ?? (() => performance.now());
    this.done = options.initial ?? 0;
    this.startedAt = this.now();
    this.lastPlainAt = this.startedAt;
  }

  /** Current line: counts, percentage, rate of this run and ETA. */
  line(): string {
    const { total, label } = this.options;
    const unit = this.options.unit ?? "seg";
    const elapsed = (this.now() - this.startedAt) / 1000;
    const fresh = this.done - (this.options.initial ?? 0);
    const rate = elapsed > 0 ? fresh / elapsed : 0;
    const eta = rate > 0 ? (total - this.done) / rate : Number.NaN;
    const percent = total > 0 ? Math.floor((100 * this.done) / total) : 100;
    return `${label} ${this.done}/${total} ${percent}% ${rate.toFixed(2)} ${unit}/s ETA ${formatDuration(eta)}`;
  }

  private bar(): string {
    const width = 24;
    const { total } = this.options;
    const filled = total > 0 ? Math.round((width * this.done) / total) : width;
    return `[${"#".repeat(filled)}${"-".repeat(width - filled)}]`;
  }

  /** Restarts the clock with `done` items already finished (e.g. found from an interrupted run). */
  reset(done: number): void {
    this.done = done;
    this.options.initial = done;
    this.startedAt = this.now();
    this.lastPlainAt = this.startedAt;
  }

  advance(count = 1): void {
    this.done += count;
    if (this.io.isTty) {
      this.io.stderr(`\r${this.bar()} ${this.line()}\u001b[K`);
      return;
    }
    const interval = (this.options.plainIntervalSeconds ?? 10) * 1000;
    if (this.now() - this.lastPlainAt >= interval) {
      this.lastPlainAt = this.now();
      this.io.stderr(`${this.line()}\n`);
    }
  }

  finish(): void {
    const elapsed = (this.now() - this.startedAt) / 1000;
    const prefix = this.io.isTty ? `\r${this.bar()} ` : "";
    this.io.stderr(
      `${prefix}${this.options.label} ${this.done}/${this.options.total} done in ${formatDuration(elapsed)}${this.io.isTty ? "\u001b[K" : ""}\n`,
    );
  }
}

/**
 * Progress of a chunked job that may resume (collect): the first report tells how much an earlier
 * run had already done, which restarts the clock there, and how many items the job has — which can
 * be fewer than the input's lines (segments skipped as too long); `onResume` hears of a resume.
 * `finish` prints the final line if anything was reported.
 */
export function chunkedProgress(
  io: CliIo,
  label: string,
  onResume?: (alreadyDone: number, total: number) => void,
): { onProgress: (done: number, total: number, chunk: number) => void; finish: () => void } {
  let progress: ProgressReporter | undefined;
  return {
    onProgress: (done, total, chunk) => {
      if (!progress) {
        const alreadyDone = done - chunk;
        if (alreadyDone > 0) onResume?.(alreadyDone, total);
        progress = new ProgressReporter(io, { label, total, initial: alreadyDone });
      }
      progress.advance(chunk);
    },
    finish: () => progress?.finish(),
  };
}
