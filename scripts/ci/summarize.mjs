// Reads vitest's JSON report and prints the one closing line CI reads: `N passed, N failed[, N skipped]`.
import { readFileSync } from 'node:fs';

const file = process.argv[2];
let report;
try {
  report = JSON.parse(readFileSync(file, 'utf8'));
} catch (err) {
  console.log(`0 passed, 1 failed`);
  console.error(`summarize: cannot read vitest report ${file}: ${err.message}`);
  process.exit(1);
}
let passed = 0;
let failed = 0;
let skipped = 0;
for (const suite of report.testResults ?? []) {
  const results = suite.assertionResults ?? [];
  // A file that failed to load has no assertions but must still count as a failure.
  if (results.length === 0 && suite.status === 'failed') failed += 1;
  for (const t of results) {
    if (t.status === 'passed') passed += 1;
    else if (t.status === 'failed') failed += 1;
    else skipped += 1;
  }
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed > 0 ? 1 : 0);
