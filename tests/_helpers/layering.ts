// The layers of aftercommit and what each may import. This file is where
// they are written down; tests/unit/module_test.ts checks them on src/ and
// mod.ts, and shows each one failing on a tree that breaks it.
//
//   src/domain        DomainEvent, AggregateRoot: imports only src/domain.
//   src/internal      shared internals (describe, rules, errors, telemetry):
//                     only src/internal; npm: @logtape/logtape,
//                     @opentelemetry/api (what its every user may load).
//   src/application   bus, decorators, Unit of Work base, JobQueue port:
//                     domain, internal; npm: @logtape/logtape,
//                     @opentelemetry/api; no driver, not even as a type.
//   src/adapters/<t>  one technology each (TECHNOLOGY below): application,
//                     domain, internal, its own folder and packages; another
//                     adapter or another technology through `import type` only.
//   src/testing       test helpers: the library layers and the adapters;
//                     npm: postgres (the embedded database's client).
//   src/cli           the outbox CLI: the library layers and the postgres and
//                     pg-boss adapters; npm: postgres.
//   mod.ts            exports domain and application (and internal) only.
//   src/dev           the example app: anything in src/, any package; nothing
//                     outside src/dev imports it.
// Everywhere: a file named `_…` is imported only from its own folder (what
// several folders share lives in src/internal/); only src/dev and src/cli
// read the environment; imports are files, npm packages or node: built-ins;
// no file imports itself through others (type imports included).
//
// The imports come from `deno info --json` (Deno's own parser: static
// imports, `export … from`, dynamic `import("…")` with a literal specifier,
// and whether an import is `import type` only), so examples in doc comments
// and strings are not mistaken for imports. A dynamic import of a computed
// specifier is invisible to it, as it is to Deno's module graph.

import { run } from "./command.ts";

/** Where a file sits in the design. */
export type Layer =
  | "mod" // mod.ts, the main entry point
  | "internal"
  | "domain"
  | "application"
  | `adapter:${string}`
  | "testing"
  | "cli"
  | "dev" // the example app
  | "unplaced" // under src/ but in no layer of the design
  | "outside"; // not under src/ and not mod.ts

/** The npm packages every library layer but the domain may use. */
const LIBRARY_PACKAGES = ["@logtape/logtape", "@opentelemetry/api"];

/** Each adapter's technology: the npm packages only it may load. */
export const TECHNOLOGY: Record<string, string[]> = {
  postgres: ["postgres"],
  "pg-boss": ["pg-boss"],
  pglite: ["@electric-sql/pglite", "@electric-sql/pglite-socket"],
  dashboard: [],
};
const DRIVERS = Object.values(TECHNOLOGY).flat();

interface Policy {
  /** Layers this layer may import at run time. */
  layers: (layer: Layer) => boolean;
  /** Further layers it may import with `import type` only. */
  typeLayers?: (layer: Layer) => boolean;
  /** npm packages it may import at run time. */
  packages: readonly string[] | "any";
  /** Further npm packages it may import with `import type` only. */
  typePackages?: readonly string[];
  /** Whether it may import Node built-ins (`node:…`). */
  node: boolean;
  /** The rule, as the failure message states it. */
  rule: string;
}

const isAdapter = (l: Layer) => l.startsWith("adapter:");
const isSource = (l: Layer) => l !== "outside" && l !== "unplaced";

function policy(layer: Layer): Policy | undefined {
  switch (layer) {
    case "internal":
      return {
        layers: (l) => l === "internal",
        packages: LIBRARY_PACKAGES,
        node: true,
        rule:
          "src/internal imports nothing else from src/; of npm only @logtape/logtape and @opentelemetry/api (what every layer that uses it may load)",
      };
    case "domain":
      return {
        layers: (l) => l === "domain",
        packages: [],
        node: false,
        rule:
          "src/domain imports only src/domain (no package, no Node built-in)",
      };
    case "application":
      return {
        layers: (l) => ["domain", "internal", "application"].includes(l),
        packages: LIBRARY_PACKAGES,
        node: true,
        rule:
          "src/application imports domain, internal and application only; of npm only @logtape/logtape and @opentelemetry/api (no driver, not even a type)",
      };
    case "testing":
      return {
        layers: (l) =>
          ["domain", "internal", "application", "testing"].includes(l) ||
          isAdapter(l),
        packages: [...LIBRARY_PACKAGES, "postgres"],
        node: true,
        rule:
          "src/testing imports domain, internal, application, testing and the adapters; of npm the library packages and postgres (the embedded database's client)",
      };
    case "cli":
      return {
        layers: (l) =>
          ["domain", "internal", "application", "cli"].includes(l) ||
          l === "adapter:postgres" || l === "adapter:pg-boss",
        packages: [...LIBRARY_PACKAGES, "postgres"],
        node: true,
        rule:
          "src/cli imports domain, internal, application, cli and the postgres and pg-boss adapters; of npm the library packages and postgres",
      };
    case "mod":
      return {
        layers: (l) => ["domain", "application", "internal"].includes(l),
        packages: [],
        node: false,
        rule:
          "mod.ts exports the domain and application layers (and internal) only",
      };
    case "dev":
      return {
        layers: (l) => isSource(l),
        packages: "any",
        node: true,
        rule: "src/dev may import anything in src/ and mod.ts",
      };
  }
  if (isAdapter(layer)) {
    const tech = layer.slice("adapter:".length);
    const own = TECHNOLOGY[tech];
    if (!own) return undefined;
    return {
      layers: (l) => ["domain", "internal", "application", layer].includes(l),
      typeLayers: isAdapter,
      packages: [...LIBRARY_PACKAGES, ...own],
      typePackages: DRIVERS,
      node: true,
      rule:
        `src/adapters/${tech} imports domain, internal, application, its own folder and its own technology (${
          own.join(", ") || "none"
        }); another adapter or technology with \`import type\` only`,
    };
  }
  return undefined;
}

/** The layer of a path relative to the root (with `/` separators). */
export function layerOf(path: string): Layer {
  if (path === "mod.ts") return "mod";
  const parts = path.split("/");
  if (parts[0] !== "src" || parts.length < 3) {
    return parts[0] === "src" ? "unplaced" : "outside";
  }
  const folder = parts[1]!;
  if (folder === "adapters") {
    return parts.length >= 4 && TECHNOLOGY[parts[2]!] !== undefined
      ? `adapter:${parts[2]}`
      : "unplaced";
  }
  if (
    ["internal", "domain", "application", "testing", "cli", "dev"].includes(
      folder,
    )
  ) {
    return folder as Layer;
  }
  return "unplaced";
}

/** What an import points at. */
export type Target =
  | { kind: "file"; path: string }
  | { kind: "package"; name: string }
  | { kind: "node"; name: string }
  | { kind: "other"; specifier: string };

export interface Import {
  /** The importing file, relative to the root. */
  from: string;
  /** The specifier as written. */
  specifier: string;
  to: Target;
  typeOnly: boolean;
  dynamic: boolean;
  /** 1-based line of the specifier. */
  line: number;
}

export type RuleId =
  | "placed"
  | "layer"
  | "example-app"
  | "private"
  | "environment"
  | "readable"
  | "acyclic";

export interface Violation {
  rule: RuleId;
  file: string;
  message: string;
}

/** Every .ts file under `src/` and `mod.ts`, relative to the root. */
export async function sourceFiles(root: string): Promise<string[]> {
  const out: string[] = ["mod.ts"];
  async function walk(dir: string): Promise<void> {
    for await (const entry of Deno.readDir(`${root}/${dir}`)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (/\.(ts|tsx|mts|js|mjs)$/.test(entry.name)) out.push(path);
    }
  }
  await walk("src");
  return out.sort();
}

interface InfoDependency {
  specifier: string;
  code?: { specifier?: string; error?: string; span?: Span };
  type?: { specifier?: string; error?: string; span?: Span };
  isDynamic?: boolean;
}
interface Span {
  start: { line: number };
}
interface InfoModule {
  specifier: string;
  error?: string;
  dependencies?: InfoDependency[];
}

function target(resolved: string, rootUrl: string): Target {
  if (resolved.startsWith(rootUrl)) {
    return { kind: "file", path: resolved.slice(rootUrl.length) };
  }
  const npm = /^npm:\/?((?:@[^/@]+\/)?[^/@]+)/.exec(resolved);
  if (npm) return { kind: "package", name: npm[1]! };
  if (resolved.startsWith("node:")) {
    return { kind: "node", name: resolved.slice(5) };
  }
  if (resolved.startsWith("file:")) {
    return { kind: "file", path: `../${resolved}` }; // outside the root
  }
  return { kind: "other", specifier: resolved };
}

/**
 * The imports of `files` (relative to `root`), read by `deno info --json`
 * run in `root` (so its deno.json maps bare specifiers). Files Deno cannot
 * parse come back in `unreadable`.
 */
export async function readImports(
  root: string,
  files: readonly string[],
  infoArgs: readonly string[] = [],
): Promise<{ imports: Import[]; unreadable: Violation[] }> {
  const rootUrl = new URL(`file://${root.replace(/\/?$/, "/")}`).href;
  const dir = await Deno.makeTempDir();
  try {
    const entry = `${dir}/entry.ts`;
    await Deno.writeTextFile(
      entry,
      files.map((f) => `import ${JSON.stringify(rootUrl + f)};\n`).join(""),
    );
    const text = await run(
      Deno.execPath(),
      ["info", "--json", ...infoArgs, entry],
      root,
    );
    const modules = (JSON.parse(text) as { modules: InfoModule[] }).modules;
    const wanted = new Set(files.map((f) => rootUrl + f));
    const imports: Import[] = [];
    const unreadable: Violation[] = [];
    for (const m of modules) {
      if (!wanted.has(m.specifier)) continue;
      const from = m.specifier.slice(rootUrl.length);
      if (m.error) {
        unreadable.push({ rule: "readable", file: from, message: m.error });
        continue;
      }
      for (const dep of m.dependencies ?? []) {
        const use = dep.code ?? dep.type;
        imports.push({
          from,
          specifier: dep.specifier,
          to: target(use?.specifier ?? dep.specifier, rootUrl),
          typeOnly: dep.code === undefined,
          dynamic: dep.isDynamic === true,
          line: (use?.span?.start.line ?? -1) + 1,
        });
      }
    }
    return { imports, unreadable };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function dirname(path: string): string {
  return path.slice(0, path.lastIndexOf("/") + 1);
}

function basename(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** Checks every import against the layer rules. */
export function checkImports(imports: readonly Import[]): Violation[] {
  const out: Violation[] = [];
  for (const i of imports) {
    const where = `${i.from}:${i.line} imports ${
      i.typeOnly ? "(type only) " : i.dynamic ? "(dynamic) " : ""
    }${JSON.stringify(i.specifier)}`;
    const fromLayer = layerOf(i.from);
    const rules = policy(fromLayer);
    if (!rules) continue; // reported by checkPlacement
    if (i.to.kind === "file") {
      const toLayer = layerOf(i.to.path);
      if (toLayer === "dev" && fromLayer !== "dev") {
        out.push({
          rule: "example-app",
          file: i.from,
          message:
            `${where}: the library never imports the example app (src/dev)`,
        });
        continue;
      }
      if (
        basename(i.to.path).startsWith("_") &&
        dirname(i.to.path) !== dirname(i.from)
      ) {
        out.push({
          rule: "private",
          file: i.from,
          message:
            `${where}: a _-private file is imported from its own folder only; shared internals live in src/internal/`,
        });
      }
      const ok = rules.layers(toLayer) ||
        (i.typeOnly && rules.typeLayers?.(toLayer) === true);
      if (!ok) {
        out.push({
          rule: "layer",
          file: i.from,
          message: `${where} (${toLayer}): ${rules.rule}`,
        });
      }
    } else if (i.to.kind === "package") {
      const name = i.to.name;
      const ok = rules.packages === "any" || rules.packages.includes(name) ||
        (i.typeOnly && rules.typePackages?.includes(name) === true);
      if (!ok) {
        out.push({
          rule: "layer",
          file: i.from,
          message: `${where} (npm ${name}): ${rules.rule}`,
        });
      }
    } else if (i.to.kind === "node") {
      if (!rules.node) {
        out.push({
          rule: "layer",
          file: i.from,
          message: `${where} (a Node built-in): ${rules.rule}`,
        });
      }
    } else {
      out.push({
        rule: "layer",
        file: i.from,
        message:
          `${where}: only files of this repository, npm packages and node: built-ins (no jsr:, no URLs)`,
      });
    }
  }
  return out;
}

/** Every file sits in a layer of the design (a new folder is a decision). */
export function checkPlacement(files: readonly string[]): Violation[] {
  return files.filter((f) => !policy(layerOf(f))).map((file) => ({
    rule: "placed" as const,
    file,
    message: `${file} is in no layer (tests/_helpers/layering.ts)${
      file.startsWith("src/adapters/")
        ? " (an adapter folder names its technology in TECHNOLOGY)"
        : ""
    }`,
  }));
}

/** Reads of the environment, in code with strings blanked. */
const ENVIRONMENT = [/\bDeno\s*\.\s*env\b/g, /\bprocess\s*\.\s*env\b/g];
/** `import { env } from "node:process"`, in code with strings kept. */
const NODE_ENV =
  /\bimport\s*\{[^}]*\benv\b[^}]*\}\s*from\s*["']node:process["']/g;

/**
 * The library never reads the environment: `Deno.env` (or Node's
 * `process.env`, or `env` from node:process) appears in code only in src/dev
 * and src/cli, the programs. Examples in doc comments are not code.
 */
export function checkEnvironment(file: string, text: string): Violation[] {
  const layer = layerOf(file);
  if (layer === "dev" || layer === "cli") return [];
  // Blanking keeps every offset, so a match's index is its place in `text`.
  const code = stripComments(text, { strings: true });
  const matches = [
    ...ENVIRONMENT.flatMap((re) => [...code.matchAll(re)]),
    ...stripComments(text).matchAll(NODE_ENV),
  ];
  return matches.map((m) => {
    const line = text.slice(0, m.index).split("\n").length;
    return {
      rule: "environment" as const,
      file,
      message: `${file}:${line} reads the environment (${
        m[0]
      }): the library takes its settings as arguments; only src/dev and src/cli read Deno.env`,
    };
  });
}

const REGEX_AFTER_WORD = new Set([
  "return",
  "typeof",
  "case",
  "do",
  "else",
  "in",
  "of",
  "new",
  "delete",
  "void",
  "throw",
  "await",
  "yield",
]);

/**
 * `text` with its comments blanked (newlines kept, so line numbers hold);
 * strings, template literals and regular expression literals are kept, or
 * with `strings: true` blanked too (but not the code in a template's `${}`).
 */
export function stripComments(
  text: string,
  options: { strings?: boolean } = {},
): string {
  const out: string[] = [];
  let i = 0;
  const n = text.length;
  // What came before a `/`: a value (then it divides) or not (a regex).
  let prevSignificant = "";
  let prevWord = "";
  const blank = (s: string) => s.replace(/[^\n]/g, " ");

  function quoted(q: string): void {
    const start = i++;
    while (i < n && text[i] !== q && text[i] !== "\n") {
      i += text[i] === "\\" ? 2 : 1;
    }
    i++;
    literal(text.slice(start, i));
  }

  function literal(s: string): void {
    out.push(options.strings ? blank(s) : s);
  }

  function template(): void {
    literal(text[i++]!); // `
    while (i < n) {
      const c = text[i]!;
      if (c === "\\") {
        literal(text.slice(i, i + 2));
        i += 2;
      } else if (c === "`") {
        literal(c);
        i++;
        return;
      } else if (c === "$" && text[i + 1] === "{") {
        literal("${");
        i += 2;
        code(true);
      } else {
        literal(c);
        i++;
      }
    }
  }

  function regex(): void {
    const start = i++;
    let inClass = false;
    while (i < n && text[i] !== "\n") {
      const c = text[i]!;
      if (c === "\\") {
        i += 2;
        continue;
      }
      i++;
      if (c === "[") inClass = true;
      else if (c === "]") inClass = false;
      else if (c === "/" && !inClass) break;
    }
    while (i < n && /[a-z]/.test(text[i]!)) i++;
    literal(text.slice(start, i));
  }

  // Code until the end, or until the `}` that closes a `${` when nested.
  function code(nested: boolean): void {
    let depth = 0;
    while (i < n) {
      const c = text[i]!;
      const next = text[i + 1];
      if (c === "/" && next === "/") {
        const end = text.indexOf("\n", i);
        const stop = end === -1 ? n : end;
        out.push(blank(text.slice(i, stop)));
        i = stop;
        continue;
      }
      if (c === "/" && next === "*") {
        const end = text.indexOf("*/", i + 2);
        const stop = end === -1 ? n : end + 2;
        out.push(blank(text.slice(i, stop)));
        i = stop;
        continue;
      }
      if (c === '"' || c === "'") {
        quoted(c);
        prevSignificant = "a";
        prevWord = "";
        continue;
      }
      if (c === "`") {
        template();
        prevSignificant = "a";
        prevWord = "";
        continue;
      }
      if (c === "/") {
        const divides = /[\w$)\]]/.test(prevSignificant) &&
          !REGEX_AFTER_WORD.has(prevWord);
        if (!divides) {
          regex();
          prevSignificant = "a";
          prevWord = "";
          continue;
        }
      }
      if (c === "{") depth++;
      if (c === "}") {
        if (nested && depth === 0) {
          literal(c);
          i++;
          prevSignificant = "a";
          return;
        }
        depth--;
      }
      if (/[\w$]/.test(c)) {
        const m = /^[\w$]+/.exec(text.slice(i, i + 64))!;
        out.push(m[0]);
        i += m[0].length;
        prevSignificant = "a";
        prevWord = m[0];
        continue;
      }
      out.push(c);
      i++;
      if (!/\s/.test(c)) {
        prevSignificant = c;
        prevWord = "";
      }
    }
  }

  code(false);
  return out.join("");
}

/** Every file in an import cycle (type imports count), with the cycle. */
export function checkCycles(imports: readonly Import[]): Violation[] {
  const edges = new Map<string, Set<string>>();
  for (const i of imports) {
    if (i.to.kind !== "file" || i.to.path.startsWith("../")) continue;
    const to = edges.get(i.from) ?? new Set();
    edges.set(i.from, to.add(i.to.path));
  }
  const out: Violation[] = [];
  // A file is in a cycle when a path leads from one of its imports back to it.
  for (const file of [...edges.keys()].sort()) {
    const path = cycleThrough(file, edges);
    if (path !== undefined) {
      out.push({
        rule: "acyclic",
        file,
        message: `${file} is in an import cycle: ${path.join(" → ")}`,
      });
    }
  }
  return out;
}

// The shortest import path from `file` back to itself, breadth first.
function cycleThrough(
  file: string,
  edges: Map<string, Set<string>>,
): string[] | undefined {
  const from = new Map<string, string>();
  let frontier = [file];
  while (frontier.length > 0) {
    const next: string[] = [];
    for (const f of frontier) {
      for (const to of edges.get(f) ?? []) {
        if (to === file) {
          const path = [file, f];
          for (let at = f; at !== file;) path.push(at = from.get(at)!);
          return [file, ...path.slice(1, -1).reverse(), file];
        }
        if (!from.has(to)) {
          from.set(to, f);
          next.push(to);
        }
      }
    }
    frontier = next;
  }
  return undefined;
}

/** Every rule, on the tree at `root`. */
export async function checkTree(
  root: string,
  infoArgs: readonly string[] = [],
): Promise<Violation[]> {
  const files = await sourceFiles(root);
  const { imports, unreadable } = await readImports(root, files, infoArgs);
  const environment: Violation[] = [];
  for (const file of files) {
    environment.push(
      ...checkEnvironment(file, await Deno.readTextFile(`${root}/${file}`)),
    );
  }
  return [
    ...checkPlacement(files),
    ...unreadable,
    ...checkImports(imports),
    ...checkCycles(imports),
    ...environment,
  ];
}
