// Node module hooks that resolve bare specifiers ("@codemirror/state")
// through the import map of the example page's index.html, to the vendored
// files under static/: node tests load the same CodeMirror the browser does.
// Registered by import-map.mjs.

import { readFileSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";

import { importMapOf } from "../../vendor/revendor.mjs";

const STATIC = new URL("../../static/", import.meta.url);
const { imports } = importMapOf(readFileSync(fileURLToPath(new URL("index.html", STATIC)), "utf8"));

function mapped(specifier) {
  if (imports[specifier]) return imports[specifier];
  const prefix = Object.keys(imports)
    .filter((k) => k.endsWith("/") && specifier.startsWith(k))
    .sort((a, b) => b.length - a.length)[0];
  return prefix ? imports[prefix] + specifier.slice(prefix.length) : null;
}

export async function resolve(specifier, context, next) {
  const url = mapped(specifier);
  if (url) return { url: pathToFileURL(fileURLToPath(new URL(`.${url}`, STATIC))).href, shortCircuit: true, format: "module" };
  return next(specifier, context);
}
