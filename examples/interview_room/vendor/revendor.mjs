#!/usr/bin/env node
// Re-vendors the page's editor: installs exactly the packages of
// `package-lock.json` (npm checks each tarball against the lock's integrity
// hash), copies each package's browser ES module and its license, unchanged,
// into `../static/vendor/<package>@<version>/`, and writes the import map that lets
// the page's modules say `import { EditorView } from "@codemirror/view"`
// into `../static/index.html`. The version in the path lets the server
// tell browsers to cache these files for good.
//
//   node vendor/revendor.mjs          # after changing package.json: npm install --package-lock-only first
//
// `revendor.test.mjs` checks that what is committed is what this script
// makes from the lock file.

import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export const VENDOR_DIR = dirname(fileURLToPath(import.meta.url));
export const STATIC_DIR = join(VENDOR_DIR, "..", "static");
/** Where the vendored files go, and the URL path they are served under. */
export const OUT_DIR = join(STATIC_DIR, "vendor");
export const URL_PREFIX = "/vendor/";

/**
 * The modes of `@codemirror/legacy-modes` the page uses, for the languages
 * that have no Lezer grammar package (C#, Kotlin, Swift, Ruby, Bash). The
 * package holds a hundred; only these are vendored.
 */
export const LEGACY_MODES = ["clike", "ruby", "swift", "shell"];

const START = "<!-- import map: written by vendor/revendor.mjs -->";
const END = "<!-- end of import map -->";

/** Installs the locked packages into a new temporary directory; returns its `node_modules`. */
export function installLocked() {
  const dir = mkdtempSync(join(tmpdir(), "interview-room-vendor-"));
  copyFileSync(join(VENDOR_DIR, "package.json"), join(dir, "package.json"));
  copyFileSync(join(VENDOR_DIR, "package-lock.json"), join(dir, "package-lock.json"));
  execFileSync("npm", ["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], {
    cwd: dir,
    stdio: ["ignore", "ignore", "inherit"],
  });
  return { nodeModules: join(dir, "node_modules"), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The locked packages: `[{ name, version }]`, from the lock file. */
export function lockedPackages() {
  const lock = JSON.parse(readFileSync(join(VENDOR_DIR, "package-lock.json"), "utf8"));
  const packages = [];
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path === "") continue;
    const name = path.replace(/^node_modules\//, "");
    // An import map without scopes maps one name to one file: two versions
    // of a package cannot both be vendored.
    if (name.includes("node_modules/")) throw new Error(`${path}: a nested package; dedupe the lock file`);
    packages.push({ name, version: entry.version });
  }
  return packages;
}

/** The browser ES module a package exports as its main entry (relative path). */
function moduleEntry(manifest) {
  const root = manifest.exports?.["."] ?? manifest.exports;
  const entry = (typeof root === "object" ? root.import : root) ?? manifest.module;
  if (typeof entry !== "string") throw new Error(`${manifest.name} has no ES module entry`);
  return entry.replace(/^\.\//, "");
}

/**
 * What is vendored from the packages in `nodeModules`: the files
 * (`{ name, dir, path }`: `path` relative to the package and to its
 * vendored directory `dir`, `<name>@<version>`) and the import map.
 */
export function plan(nodeModules) {
  const files = [];
  const imports = {};
  for (const { name, version } of lockedPackages()) {
    const manifest = JSON.parse(readFileSync(join(nodeModules, name, "package.json"), "utf8"));
    if (manifest.version !== version) throw new Error(`${name}: installed ${manifest.version}, locked ${version}`);
    const dir = `${name}@${version}`;
    files.push({ name, dir, path: "LICENSE" });
    if (name === "@codemirror/legacy-modes") {
      for (const mode of LEGACY_MODES) files.push({ name, dir, path: `mode/${mode}.js` });
      imports[`${name}/mode/`] = `${URL_PREFIX}${dir}/mode/`;
    } else {
      const entry = moduleEntry(manifest);
      files.push({ name, dir, path: entry });
      imports[name] = `${URL_PREFIX}${dir}/${entry}`;
    }
  }
  return { files, importMap: { imports } };
}

/** The `<script type="importmap">` block, between its markers, as index.html holds it. */
export function importMapBlock(importMap) {
  const json = JSON.stringify(importMap, null, 2).replace(/\n/g, "\n  ");
  return `${START}\n  <script type="importmap">\n  ${json}\n  </script>\n  ${END}`;
}

/** The import map (`{imports}`) index.html's block holds. */
export function importMapOf(html) {
  const block = currentImportMapBlock(html);
  if (block === null) throw new Error("index.html has no import map block");
  const json = block.slice(block.indexOf(">", block.indexOf("<script")) + 1, block.indexOf("</script>"));
  return JSON.parse(json);
}

/** The import map block currently in index.html, or null. */
export function currentImportMapBlock(html) {
  const start = html.indexOf(START);
  const end = html.indexOf(END);
  return start < 0 || end < start ? null : html.slice(start, end + END.length);
}

function main() {
  const { nodeModules, remove } = installLocked();
  try {
    const { files, importMap } = plan(nodeModules);
    rmSync(OUT_DIR, { recursive: true, force: true });
    for (const { name, dir, path } of files) {
      const target = join(OUT_DIR, dir, path);
      mkdirSync(dirname(target), { recursive: true });
      cpSync(join(nodeModules, name, path), target);
    }
    const indexPath = join(STATIC_DIR, "index.html");
    const html = readFileSync(indexPath, "utf8");
    const current = currentImportMapBlock(html);
    if (current === null) throw new Error(`index.html has no "${START}" ... "${END}" block`);
    writeFileSync(indexPath, html.replace(current, importMapBlock(importMap)));
    console.log(`vendored ${files.length} files of ${lockedPackages().length} packages into ${OUT_DIR}`);
  } finally {
    remove();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
