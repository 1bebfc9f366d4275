// Prints vitest's JSON report as the one closing line CI reads: "N passed, N failed, N skipped".
import { existsSync, readFileSync } from "node:fs";

const [file, statusText] = process.argv.slice(2);
const status = Number(statusText ?? "0");
if (!file || !existsSync(file)) {
  // Typecheck or lint failed before any test ran.
  console.log(`0 passed, ${status === 0 ? 0 : 1} failed`);
} else {
  const report = JSON.parse(readFileSync(file, "utf8"));
  const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  console.log(`${report.numPassedTests} passed, ${report.numFailedTests} failed, ${skipped} skipped`);
}
