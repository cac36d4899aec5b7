// A small syntax highlighter for the editor: comments, strings, numbers,
// keywords and built-ins of common interview languages. It tokenizes the whole
// file at once (interview code is small) and returns DOM nodes, never HTML.

const words = (s) => new Set(s.split(/\s+/).filter(Boolean));

const DQ = String.raw`"(?:[^"\\\n]|\\.)*"?`;
const SQ = String.raw`'(?:[^'\\\n]|\\.)*'?`;
const CHAR = String.raw`'(?:[^'\\\n]|\\.{1,8})'`;
const BACKTICK = String.raw`\`(?:[^\`\\]|\\[\s\S])*\`?`;
const BLOCK = String.raw`/\*[\s\S]*?(?:\*/|$)`;
const SLASHES = String.raw`//[^\n]*`;
const HASH = String.raw`#[^\n]*`;

const C_KW = "if else for while do switch case default break continue return goto sizeof struct union enum typedef const static extern void char short int long float double signed unsigned volatile inline";
const DEFS = {
  python: {
    tokens: [HASH, String.raw`[rbfuRBFU]{0,2}"""[\s\S]*?(?:"""|$)`, String.raw`[rbfuRBFU]{0,2}'''[\s\S]*?(?:'''|$)`, DQ, SQ],
    kw: "False None True and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield match case",
    builtins: "print len range int str list dict set tuple float bool enumerate zip map filter sorted reversed sum min max abs open isinstance super self cls input any all iter next object type",
  },
  javascript: {
    tokens: [BLOCK, SLASHES, BACKTICK, DQ, SQ],
    kw: "async await break case catch class const continue debugger default delete do else export extends finally for from function if import in instanceof let new of return static super switch this throw try typeof var void while with yield null undefined true false",
    builtins: "console Math JSON Object Array String Number Boolean Map Set Promise Date Error RegExp Symbol parseInt parseFloat",
  },
  typescript: {
    tokens: [BLOCK, SLASHES, BACKTICK, DQ, SQ],
    kw: "abstract any as async await boolean break case catch class const constructor continue declare default delete do else enum export extends false finally for from function if implements import in instanceof interface keyof let namespace never new null number of private protected public readonly return static string super switch this throw true try type typeof undefined unknown var void while yield",
    builtins: "console Math JSON Object Array String Number Boolean Map Set Promise Date Error Record Partial",
  },
  java: {
    tokens: [BLOCK, SLASHES, DQ, CHAR],
    kw: "abstract assert boolean break byte case catch char class const continue default do double else enum extends final finally float for if implements import instanceof int interface long new package private protected public return short static super switch synchronized this throw throws try var void volatile while true false null record",
    builtins: "System String Integer Long Math List ArrayList Map HashMap Set HashSet Arrays Collections Object",
  },
  c: { tokens: [BLOCK, SLASHES, DQ, CHAR, String.raw`#\s*\w+`], kw: C_KW + " NULL", builtins: "printf scanf malloc free memcpy strlen size_t", hashIsMeta: true },
  cpp: {
    tokens: [BLOCK, SLASHES, DQ, CHAR, String.raw`#\s*\w+`],
    kw: C_KW + " auto bool class delete false friend namespace new nullptr operator private protected public template this throw true try catch typename using virtual override constexpr",
    builtins: "std cout cin endl vector string map unordered_map set pair size_t",
    hashIsMeta: true,
  },
  csharp: {
    tokens: [BLOCK, SLASHES, DQ, CHAR],
    kw: "abstract as base bool break byte case catch char class const continue decimal default do double else enum false finally float for foreach if in int interface internal is long namespace new null object out override private protected public readonly ref return static string struct switch this throw true try using var virtual void while async await",
    builtins: "Console Math List Dictionary String Int32 Linq",
  },
  go: {
    tokens: [BLOCK, SLASHES, BACKTICK, DQ, CHAR],
    kw: "break case chan const continue default defer else fallthrough for func go goto if import interface map package range return select struct switch type var true false nil",
    builtins: "append cap len make new panic print println fmt int string bool error byte rune float64",
  },
  rust: {
    tokens: [BLOCK, SLASHES, DQ, CHAR],
    kw: "as async await break const continue crate else enum extern false fn for if impl in let loop match mod move mut pub ref return self Self static struct super trait true type unsafe use where while dyn",
    builtins: "println print format vec Vec String Option Some None Result Ok Err Box HashMap usize isize u32 i32 u64 i64 f64 bool str",
  },
  ruby: {
    tokens: [HASH, DQ, SQ],
    kw: "alias and begin break case class def defined do else elsif end ensure false for if in module next nil not or redo rescue retry return self super then true undef unless until when while yield",
    builtins: "puts print require attr_accessor each map",
  },
  kotlin: {
    tokens: [BLOCK, SLASHES, String.raw`"""[\s\S]*?(?:"""|$)`, DQ, CHAR],
    kw: "as break class continue do else false for fun if in interface is null object package return super this throw true try typealias val var when while",
    builtins: "println listOf mapOf setOf mutableListOf String Int Long",
  },
  swift: {
    tokens: [BLOCK, SLASHES, DQ],
    kw: "as break case class continue default defer do else enum extension false for func guard if import in init let nil protocol return self static struct switch throw true try var where while",
    builtins: "print Int String Array Dictionary Double Bool",
  },
  php: {
    tokens: [BLOCK, SLASHES, HASH, DQ, SQ],
    kw: "abstract and array as break case catch class const continue default do echo else elseif extends false for foreach function if implements interface namespace new null private protected public return static switch this throw true try use var while",
    builtins: "count strlen array_map array_filter print_r var_dump",
  },
  sql: {
    tokens: [BLOCK, String.raw`--[^\n]*`, SQ, DQ],
    kw: "select from where and or not insert into values update set delete create table drop alter join left right inner outer on group by order having limit as distinct null is in like between union all case when then else end primary key",
    builtins: "count sum avg min max coalesce",
    caseInsensitive: true,
  },
  bash: {
    tokens: [HASH, DQ, SQ],
    kw: "if then else elif fi for while do done case esac function in return local export",
    builtins: "echo cd ls grep sed awk cat read printf",
  },
};
DEFS.js = DEFS.javascript;
DEFS.ts = DEFS.typescript;
DEFS["c++"] = DEFS.cpp;
DEFS["c#"] = DEFS.csharp;
DEFS.sh = DEFS.bash;
DEFS.shell = DEFS.bash;
DEFS.py = DEFS.python;

const NUMBER = String.raw`\b\d[\w.]*`;
const IDENT = String.raw`[A-Za-z_$][\w$]*`;
const compiled = new Map();

function grammar(language) {
  const key = String(language || "").toLowerCase();
  if (!compiled.has(key)) {
    const def = DEFS[key];
    if (!def) compiled.set(key, null);
    else {
      // Group 1 holds comments and strings, group 2 numbers, group 3 words.
      const kinds = def.tokens.map((t) => `(?:${t})`).join("|");
      const fold = (s) => (def.caseInsensitive ? s.toLowerCase() : s);
      compiled.set(key, {
        re: new RegExp(`(${kinds})|(${NUMBER})|(${IDENT})`, "g"),
        kw: words(fold(def.kw)),
        builtins: words(fold(def.builtins || "")),
        fold,
        hashIsMeta: !!def.hashIsMeta,
      });
    }
  }
  return compiled.get(key);
}

function classOfLiteral(token, g) {
  const c = token[0];
  if (c === "#" && g.hashIsMeta) return "tok-meta";
  if (c === "/" || c === "#" || c === "-") return "tok-comment";
  return "tok-string";
}

/** The nodes that show `text` highlighted for `language` (plain text if unknown). */
export function highlight(text, language) {
  const g = grammar(language);
  if (!g) return [document.createTextNode(text)];
  const nodes = [];
  let plain = "";
  const flush = () => {
    if (plain) nodes.push(document.createTextNode(plain));
    plain = "";
  };
  const span = (cls, s) => {
    flush();
    const el = document.createElement("span");
    el.className = cls;
    el.textContent = s;
    nodes.push(el);
  };
  g.re.lastIndex = 0;
  let at = 0;
  for (let m = g.re.exec(text); m !== null; m = g.re.exec(text)) {
    if (m[0] === "") {
      g.re.lastIndex++;
      continue;
    }
    plain += text.slice(at, m.index);
    at = m.index + m[0].length;
    if (m[1] !== undefined) span(classOfLiteral(m[1], g), m[1]);
    else if (m[2] !== undefined) span("tok-number", m[2]);
    else {
      const word = m[3];
      const folded = g.fold(word);
      if (g.kw.has(folded)) span("tok-kw", word);
      else if (g.builtins.has(folded)) span("tok-builtin", word);
      else if (text[at] === "(") span("tok-fn", word);
      else if (/^[A-Z][a-z]/.test(word)) span("tok-type", word);
      else plain += word;
    }
  }
  plain += text.slice(at);
  flush();
  return nodes;
}
