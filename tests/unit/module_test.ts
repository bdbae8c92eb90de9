// The layers of the library, as tests/_helpers/layering.ts states them,
// checked on every import of src/ and mod.ts; the second half of this file
// shows that each rule fails on a tree that breaks it.
import assert from "node:assert/strict";
import {
  checkTree,
  type Import,
  layerOf,
  readImports,
  type RuleId,
  sourceFiles,
  stripComments,
  TECHNOLOGY,
  type Violation,
} from "../_helpers/layering.ts";
import { fromFileUrl } from "./_paths.ts";

const root = fromFileUrl(new URL("../../", import.meta.url)).replace(/\/$/, "");

const RULES: Record<RuleId, string> = {
  placed: "every file under src/ sits in a layer of the design",
  readable: "every file parses",
  layer:
    "each layer imports only the layers and npm packages the design allows it",
  "example-app": "the library never imports the example app (src/dev)",
  private: "a _-private file is imported only from its own folder",
  environment:
    "the library never reads the environment (only src/dev, src/cli)",
  acyclic: "no file imports itself through others (type imports included)",
};

function byRule(violations: Violation[], rule: RuleId): string[] {
  return violations.filter((v) => v.rule === rule).map((v) => v.message);
}

Deno.test("src/ and mod.ts follow the layer rules of the design", async (t) => {
  const violations = await checkTree(root, ["--frozen"]);
  for (const [rule, name] of Object.entries(RULES)) {
    await t.step(name, () => {
      assert.deepEqual(byRule(violations, rule as RuleId), []);
    });
  }
});

/** The npm packages `entry` loads at run time (type-only imports load nothing). */
function loadedPackages(imports: readonly Import[], entry: string): string[] {
  const packages = new Set<string>();
  const seen = new Set<string>();
  const todo = [entry];
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const i of imports) {
      if (i.from !== file || i.typeOnly) continue;
      if (i.to.kind === "file") todo.push(i.to.path);
      else if (i.to.kind === "package") packages.add(i.to.name);
    }
  }
  return [...packages].sort();
}

Deno.test("each entry point of deno.json loads only its own technology", async (t) => {
  const config = JSON.parse(await Deno.readTextFile(`${root}/deno.json`)) as {
    exports: Record<string, string>;
  };
  const { imports } = await readImports(
    root,
    await sourceFiles(root),
    ["--frozen"],
  );
  const drivers = Object.values(TECHNOLOGY).flat();
  for (const [name, path] of Object.entries(config.exports)) {
    const file = path.replace(/^\.\//, "");
    const layer = layerOf(file);
    // An adapter loads its own technology; the main entry, the dashboard and
    // `./testing` load none ("a user who wants just the bus loads no
    // database driver"). The embedded test database and the CLI are programs
    // over the adapters they import, checked by their layer rules above.
    const checked = layer === "mod" || layer.startsWith("adapter:") ||
      file === "src/testing/mod.ts";
    if (!checked) continue;
    await t.step(`${name} (${file})`, () => {
      const own = layer.startsWith("adapter:")
        ? TECHNOLOGY[layer.slice("adapter:".length)] ?? []
        : [];
      const loaded = loadedPackages(imports, file).filter((p) =>
        drivers.includes(p) && !own.includes(p)
      );
      assert.deepEqual(loaded, [], `${file} loads another technology`);
    });
  }
});

Deno.test("deno.json publishes the library and not the example app", async () => {
  const config = JSON.parse(await Deno.readTextFile(`${root}/deno.json`)) as {
    exports: Record<string, string>;
    publish: { include: string[]; exclude: string[] };
  };
  for (const path of Object.values(config.exports)) {
    const layer = layerOf(path.replace(/^\.\//, ""));
    assert.ok(
      !["dev", "internal", "unplaced", "outside"].includes(layer),
      path,
    );
  }
  assert.ok(config.publish.exclude.some((p) => /^(\.\/)?src\/dev\/?$/.test(p)));
});

Deno.test("the library never configures logging and never prints", async () => {
  for (const file of await sourceFiles(root)) {
    if (layerOf(file) === "dev") continue;
    const text = await Deno.readTextFile(`${root}/${file}`);
    const code = stripComments(text, { strings: true });
    assert.doesNotMatch(
      code,
      /\bconfigure(Sync)?\(/,
      `${file} configures LogTape`,
    );
    assert.doesNotMatch(code, /\bconsole\./, `${file} prints`);
  }
});

Deno.test("the library's JSDoc tags start their own line (an inline @default is read as text)", async () => {
  const inline =
    /^\s*(\/\*\*|\*)\s*\S[^\n]*\s@(default|throws|example|param|returns)\b/;
  for (const file of await sourceFiles(root)) {
    if (layerOf(file) === "dev") continue;
    const text = await Deno.readTextFile(`${root}/${file}`);
    const found = text.split("\n").findIndex((line) => inline.test(line));
    assert.equal(found, -1, `${file}:${found + 1} has a tag after text`);
  }
});

// A small tree that keeps every rule, plus one file (or line) per way of
// breaking one. `deno info` reads it with --no-npm and --no-remote, so the
// packages and URLs are named, never fetched.
const CLEAN: Record<string, string> = {
  "deno.json": JSON.stringify({
    imports: {
      "@logtape/logtape": "npm:@logtape/logtape@2",
      "@opentelemetry/api": "npm:@opentelemetry/api@1",
      "@electric-sql/pglite": "npm:@electric-sql/pglite@0.5",
      "pg-boss": "npm:pg-boss@12",
      postgres: "npm:postgres@3",
    },
  }),
  "mod.ts": `export { A } from "./src/domain/a.ts";
export type { Port } from "./src/application/port.ts";
export { u } from "./src/internal/util.ts";
`,
  "src/domain/a.ts": `import { b } from "./events/b.ts";
export class A { b = b; }
`,
  "src/domain/events/b.ts": `export const b = 1;\n`,
  "src/internal/util.ts": `import { getLogger } from "@logtape/logtape";
import { inspect } from "node:util";
export const u = [getLogger, inspect];
`,
  "src/application/port.ts": `/**
 * \`\`\`ts
 * import postgres from "postgres";
 * import { PgBoss } from "../adapters/pg-boss/queue.ts";
 * const sql = postgres(Deno.env.get("DATABASE_URL")!);
 * \`\`\`
 */
// import "../dev/main.ts";
import { AsyncLocalStorage } from "node:async_hooks";
import { trace } from "@opentelemetry/api";
import { A } from "../domain/a.ts";
import { u } from "../internal/util.ts";
import { hidden } from "./_private.ts";
export type Port = A;
export const text = 'import "../adapters/postgres/uow.ts"; Deno.env.get("X")';
export const tpl = \`\${u} import "../dev/main.ts" \${{ a: "}" }.a}\`;
export const re = /import "postgres"/;
export const all = [AsyncLocalStorage, trace, hidden, 4 / 2 / 1];
`,
  "src/application/_private.ts": `export const hidden = 1;\n`,
  "src/adapters/postgres/uow.ts": `import postgres from "postgres";
import type { Queue } from "../pg-boss/queue.ts";
import type { PGlite } from "@electric-sql/pglite";
import { A } from "../../domain/a.ts";
import { text } from "../../application/port.ts";
import { sql } from "./_sql.ts";
export class UnitOfWork { q?: Queue; p?: PGlite; all = [postgres, A, text, sql]; }
`,
  "src/adapters/postgres/_sql.ts": `export const sql = 1;\n`,
  "src/adapters/pg-boss/queue.ts": `import { PgBoss } from "pg-boss";
export { p } from "./_p.ts";
export class Queue { boss?: PgBoss; }
export const load = () => import("../../internal/util.ts");
`,
  "src/adapters/pg-boss/_p.ts": `export const p = 1;\n`,
  "src/adapters/pglite/db.ts":
    `export { PGlite } from "@electric-sql/pglite";\n`,
  "src/testing/mod.ts": `import postgres from "postgres";
import { UnitOfWork } from "../adapters/postgres/uow.ts";
export const all = [postgres, UnitOfWork];
`,
  "src/cli/mod.ts": `import postgres from "postgres";
import { parseArgs } from "node:util";
import { UnitOfWork } from "../adapters/postgres/uow.ts";
export const url = Deno.env.get("DATABASE_URL");
export const all = [postgres, parseArgs, UnitOfWork];
`,
  "src/dev/main.ts": `import { A } from "../../mod.ts";
import { PgBoss } from "pg-boss";
import { Queue } from "../adapters/pg-boss/queue.ts";
const testing = await import("../testing/mod.ts");
export const port = Deno.env.get("PORT") ?? process.env.PORT;
export const all = [A, PgBoss, Queue, testing];
`,
};

// Each entry breaks exactly one rule, once.
const BROKEN: [file: string, rule: RuleId, text: string][] = [
  [
    "src/internal/imports_application.ts",
    "layer",
    `import "../application/port.ts";`,
  ],
  [
    "src/internal/imports_driver.ts",
    "layer",
    `import postgres from "postgres";`,
  ],
  [
    "src/domain/imports_internal.ts",
    "layer",
    `import { u } from "../internal/util.ts";`,
  ],
  [
    "src/domain/imports_node.ts",
    "layer",
    `import { randomUUID } from "node:crypto";`,
  ],
  ["src/domain/imports_logtape.ts", "layer", `import "@logtape/logtape";`],
  [
    "src/domain/events/imports_application.ts",
    "layer",
    `export type { Port } from "../../application/port.ts";`,
  ],
  [
    "src/application/imports_adapter_dynamically.ts",
    "layer",
    `export const load = () => import("../adapters/postgres/uow.ts");`,
  ],
  [
    "src/application/reexports_driver.ts",
    "layer",
    `export { PgBoss } from "pg-boss";`,
  ],
  [
    "src/application/imports_driver_type.ts",
    "layer",
    `import type { Sql } from "postgres";`,
  ],
  [
    "src/application/imports_pglite.ts",
    "layer",
    `import { PGlite } from "@electric-sql/pglite";`,
  ],
  [
    "src/application/imports_testing.ts",
    "layer",
    `import "../testing/mod.ts";`,
  ],
  ["src/application/imports_mod.ts", "layer", `import "../../mod.ts";`],
  [
    "src/application/imports_url.ts",
    "layer",
    `import "https://deno.land/x/nothing/mod.ts";`,
  ],
  [
    "src/application/imports_outside.ts",
    "layer",
    `import "../../tests/helper.ts";`,
  ],
  [
    "src/adapters/postgres/imports_other_adapter.ts",
    "layer",
    `import { Queue } from "../pg-boss/queue.ts";`,
  ],
  [
    "src/adapters/postgres/exports_other_adapter.ts",
    "layer",
    `export * from "../pg-boss/queue.ts";`,
  ],
  [
    "src/adapters/pg-boss/imports_other_technology.ts",
    "layer",
    `export const open = () => import("@electric-sql/pglite");`,
  ],
  [
    "src/adapters/pglite/imports_testing.ts",
    "layer",
    `import "../../testing/mod.ts";`,
  ],
  [
    "src/adapters/dashboard/imports_driver.ts",
    "layer",
    `import postgres from "postgres";`,
  ],
  [
    "src/testing/imports_pg_boss.ts",
    "layer",
    `import { PgBoss } from "pg-boss";`,
  ],
  [
    "src/cli/imports_pglite_adapter.ts",
    "layer",
    `import "../adapters/pglite/db.ts";`,
  ],
  ["src/application/imports_dev.ts", "example-app", `import "../dev/main.ts";`],
  [
    "src/testing/imports_dev_dynamically.ts",
    "example-app",
    `await import("../dev/main.ts");`,
  ],
  [
    "src/dev/imports_private.ts",
    "private",
    `import { sql } from "../adapters/postgres/_sql.ts";`,
  ],
  [
    "src/testing/reexports_private.ts",
    "private",
    `export { p } from "../adapters/pg-boss/_p.ts";`,
  ],
  [
    "src/application/outbox/imports_parent_private.ts",
    "private",
    `import "../_private.ts";`,
  ],
  [
    "src/adapters/postgres/reads_env.ts",
    "environment",
    `export const url = Deno.env.get("DATABASE_URL");`,
  ],
  [
    "src/testing/reads_process_env.ts",
    "environment",
    `export const url = process.env.DATABASE_URL;`,
  ],
  [
    "src/internal/imports_env.ts",
    "environment",
    `import {\n  env,\n} from "node:process";`,
  ],
  ["src/util/helper.ts", "placed", `export const x = 1;`],
  ["src/adapters/redis/queue.ts", "placed", `export const x = 1;`],
  ["src/adapters/loose.ts", "placed", `export const x = 1;`],
  ["src/domain/unparsable.ts", "readable", `export const = ;`],
  [
    "src/application/cycle_a.ts",
    "acyclic",
    `import "./cycle_b.ts";\nexport type A = 1;`,
  ],
  [
    "src/application/cycle_b.ts",
    "acyclic",
    `import type { A } from "./cycle_a.ts";\nexport const b: A = 1;`,
  ],
];

async function writeTree(dir: string, files: Record<string, string>) {
  for (const [path, text] of Object.entries(files)) {
    await Deno.mkdir(`${dir}/${path.slice(0, path.lastIndexOf("/") + 1)}`, {
      recursive: true,
    });
    await Deno.writeTextFile(`${dir}/${path}`, text);
  }
}

const FABRICATED_INFO = ["--no-npm", "--no-remote", "--no-lock"];

Deno.test("the layering check passes a tree that keeps the rules", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeTree(dir, CLEAN);
    assert.deepEqual(await checkTree(dir, FABRICATED_INFO), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the layering check fails each rule on an import that breaks it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeTree(dir, {
      ...CLEAN,
      ...Object.fromEntries(BROKEN.map(([file, , text]) => [file, text])),
      "mod.ts": CLEAN["mod.ts"] +
        `export { UnitOfWork } from "./src/adapters/postgres/uow.ts";\n`,
    });
    const found = (await checkTree(dir, FABRICATED_INFO))
      .map((v) => `${v.file} ${v.rule}`).sort();
    const expected = [
      ...BROKEN.map(([file, rule]) => `${file} ${rule}`),
      "mod.ts layer",
    ].sort();
    assert.deepEqual(found, expected);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("stripComments blanks comments, and with strings: true the literals too", () => {
  const _ = (s: string) => " ".repeat(s.length);
  const source = [
    `const a = "// not a comment"; // Deno.env`,
    `/* Deno.env`,
    `   still */ const b = '/* no */';`,
    "const c = `${a /* x */}` + `${{ k: `}` }.k}`; // y",
    `const d = x / 2 / y; const e = /\\/\\/ ["/]/g.source; // z`,
    `return /* c */ /a*b/;`,
  ].join("\n");
  assert.equal(
    stripComments(source),
    [
      `const a = "// not a comment"; ${_("// Deno.env")}`,
      _("/* Deno.env"),
      `${_("   still */")} const b = '/* no */';`,
      `const c = \`\${a ${_("/* x */")}}\` + \`\${{ k: \`}\` }.k}\`; ${
        _("// y")
      }`,
      `const d = x / 2 / y; const e = /\\/\\/ ["/]/g.source; ${_("// z")}`,
      `return ${_("/* c */")} /a*b/;`,
    ].join("\n"),
  );
  assert.equal(
    stripComments(source, { strings: true }),
    [
      `const a = ${_(`"// not a comment"`)}; ${_("// Deno.env")}`,
      _("/* Deno.env"),
      `${_("   still */")} const b = ${_(`'/* no */'`)};`,
      `const c = ${_("`${")}a ${_("/* x */")}${_("}`")} + ${_("`${")}{ k: ${
        _("`}`")
      } }.k${_("}`")}; ${_("// y")}`,
      `const d = x / 2 / y; const e = ${_(`/\\/\\/ ["/]/g`)}.source; ${
        _("// z")
      }`,
      `return ${_("/* c */")} ${_("/a*b/")};`,
    ].join("\n"),
  );
});
