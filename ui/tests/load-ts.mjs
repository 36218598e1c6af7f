// Loads one self-contained TypeScript module of the UI (no imports of its own, e.g. src/money.ts)
// into Node, compiled in memory with the TypeScript compiler the UI already depends on: its unit
// tests and the browser test compute expected values with the very code the page runs.

import { readFileSync } from "node:fs";

import ts from "typescript";

export async function loadTs(url) {
  const { outputText } = ts.transpileModule(readFileSync(url, "utf8"), {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  });
  return import(`data:text/javascript;base64,${Buffer.from(outputText).toString("base64")}`);
}
