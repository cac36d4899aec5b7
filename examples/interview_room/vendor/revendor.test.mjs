// The vendored editor is exactly the locked packages: every file under
// static/vendor is byte for byte the file of the package the lock file pins
// (installed by `npm ci`, which checks each tarball's integrity hash), every
// locked package is there with its license, and index.html's import map is
// the one the lock file gives. Run by `cargo test -p interview-room --test
// vendored_editor`, or `node --test vendor/revendor.test.mjs`.

import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { after, before, test } from "node:test";

import {
  OUT_DIR,
  STATIC_DIR,
  currentImportMapBlock,
  importMapBlock,
  installLocked,
  lockedPackages,
  plan,
} from "./revendor.mjs";

let installed;
before(() => {
  installed = installLocked();
});
after(() => installed?.remove());

function walk(dir) {
  return readdirSync(dir).flatMap((entry) => {
    const path = join(dir, entry);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

test("every vendored file is the locked package's file, unchanged", () => {
  const { files } = plan(installed.nodeModules);
  const expected = new Set(files.map(({ dir, path }) => `${dir}/${path}`));
  const present = walk(OUT_DIR).map((path) => relative(OUT_DIR, path).split("\\").join("/"));
  assert.deepEqual(
    present.filter((p) => !expected.has(p)),
    [],
    "files under static/vendor that no locked package has",
  );
  assert.deepEqual(
    [...expected].filter((p) => !present.includes(p)),
    [],
    "locked files missing from static/vendor",
  );
  for (const { name, dir, path } of files) {
    const vendored = readFileSync(join(OUT_DIR, dir, path));
    const locked = readFileSync(join(installed.nodeModules, name, path));
    assert.ok(vendored.equals(locked), `static/vendor/${dir}/${path} differs from ${name}'s file`);
  }
});

test("every locked package is vendored with its license", () => {
  for (const { name, version } of lockedPackages()) {
    const license = readFileSync(join(OUT_DIR, `${name}@${version}`, "LICENSE"), "utf8");
    assert.match(license, /permission|license/i, `${name}'s LICENSE`);
  }
  assert.ok(lockedPackages().some(({ name }) => name === "@codemirror/view"));
});

test("index.html's import map is the lock file's", () => {
  const html = readFileSync(join(STATIC_DIR, "index.html"), "utf8");
  const { importMap } = plan(installed.nodeModules);
  assert.equal(currentImportMapBlock(html), importMapBlock(importMap));
  // Every mapped file is vendored.
  for (const url of Object.values(importMap.imports)) {
    if (url.endsWith("/")) continue;
    assert.ok(statSync(join(STATIC_DIR, url)).isFile(), url);
  }
});
