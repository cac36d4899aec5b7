// `node --import ./tests/client/import-map.mjs`: bare specifiers resolve
// through the example page's import map (see importmap-hooks.mjs).
import { register } from "node:module";

register("./importmap-hooks.mjs", import.meta.url);
