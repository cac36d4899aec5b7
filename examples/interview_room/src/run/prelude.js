// Evaluated before the program, in the same interpreter: installs a
// `console` whose output the server captures. `write(stream, text)` is the
// native side (1 = stdout, 2 = stderr); it is only an argument here, so the
// program cannot reach it. Values print roughly as node prints them, since
// that is what candidates expect to see.
(function install(write) {
  "use strict";

  const MAX_DEPTH = 2;
  const MAX_ITEMS = 100;
  const identifier = /^[A-Za-z_$][\w$]*$/;

  function quote(s) {
    return "'" + s.replace(/\\/g, "\\\\").replace(/'/g, "\\'").replace(/\n/g, "\\n") + "'";
  }

  function show(value, depth, seen) {
    switch (typeof value) {
      case "string":
        return depth === 0 ? value : quote(value);
      case "number":
        return Object.is(value, -0) ? "-0" : String(value);
      case "bigint":
        return `${value}n`;
      case "undefined":
      case "boolean":
      case "symbol":
        return String(value);
      case "function":
        return value.name ? `[Function: ${value.name}]` : "[Function (anonymous)]";
      default:
        break;
    }
    if (value === null) return "null";
    if (value instanceof Error) {
      const head = `${value.name}: ${value.message}`;
      return depth === 0 && value.stack ? `${head}\n${value.stack.trimEnd()}` : `[${head}]`;
    }
    if (value instanceof Date) return isNaN(value) ? "Invalid Date" : value.toISOString();
    if (value instanceof RegExp) return String(value);
    if (seen.includes(value)) return "[Circular]";
    if (depth > MAX_DEPTH) return Array.isArray(value) ? "[Array]" : "[Object]";
    const inner = seen.concat([value]);
    const list = (items, size) => {
      const shown = items.slice(0, MAX_ITEMS);
      if (size > MAX_ITEMS) shown.push(`... ${size - MAX_ITEMS} more items`);
      return shown;
    };
    if (Array.isArray(value)) {
      const items = list(value.slice(0, MAX_ITEMS).map((v) => show(v, depth + 1, inner)), value.length);
      return items.length ? `[ ${items.join(", ")} ]` : "[]";
    }
    if (value instanceof Map) {
      const items = list([...value].slice(0, MAX_ITEMS).map(([k, v]) => `${show(k, depth + 1, inner)} => ${show(v, depth + 1, inner)}`), value.size);
      return items.length ? `Map(${value.size}) { ${items.join(", ")} }` : `Map(0) {}`;
    }
    if (value instanceof Set) {
      const items = list([...value].slice(0, MAX_ITEMS).map((v) => show(v, depth + 1, inner)), value.size);
      return items.length ? `Set(${value.size}) { ${items.join(", ")} }` : `Set(0) {}`;
    }
    const keys = Object.keys(value);
    const items = list(
      keys.slice(0, MAX_ITEMS).map((k) => `${identifier.test(k) ? k : quote(k)}: ${show(value[k], depth + 1, inner)}`),
      keys.length,
    );
    const ctor = Object.getPrototypeOf(value)?.constructor;
    const prefix = ctor && ctor !== Object && ctor.name ? `${ctor.name} ` : "";
    return items.length ? `${prefix}{ ${items.join(", ")} }` : `${prefix}{}`;
  }

  const format = (args) => args.map((v) => show(v, 0, [])).join(" ") + "\n";
  const out = (...args) => write(1, format(args));
  const err = (...args) => write(2, format(args));
  globalThis.console = { log: out, info: out, debug: out, error: err, warn: err, trace: err };
})
