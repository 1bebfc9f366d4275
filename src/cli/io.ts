/** Where a command writes. Injectable so tests can run the CLI in-process. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  /** Whether stderr is a terminal (progress bars) . */
  isTty: boolean;
}

/**
 * A process stream whose reader may go away (`routelmt score … | head`): once it has, further
 * writes are dropped rather than crashing the process on an unhandled EPIPE, so a command still
 * finishes what it writes to files and exits with its own code.
 */
function writerTo(stream: NodeJS.WriteStream): (text: string) => void {
  let readerGone = false;
  stream.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") throw error;
    readerGone = true;
  });
  return (text) => {
    if (!readerGone) stream.write(text);
  };
}

export const processIo: CliIo = {
  stdout: writerTo(process.stdout),
  stderr: writerTo(process.stderr),
  isTty: Boolean(process.stderr.isTTY),
};
