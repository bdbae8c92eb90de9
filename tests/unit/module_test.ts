// Layering and packaging rules of DESIGN.md, checked on the module graph.
import assert from "node:assert/strict";
import { fromFileUrl } from "./_paths.ts";

const root = fromFileUrl(new URL("../../", import.meta.url));
const DRIVERS = /npm:\/?(postgres|pg-boss|pg|@electric-sql\/pglite[^@]*)@/;

async function moduleGraph(entry: string): Promise<string[]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", entry],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  // `modules` is the graph reached from `entry`; `npmPackages` lists every
  // package the configuration resolves, so it is not used here.
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: { specifier: string }[];
  };
  return info.modules.map((m) => m.specifier);
}

Deno.test("mod.ts loads no database driver", async () => {
  const graph = await moduleGraph("mod.ts");
  const drivers = graph.filter((s) => DRIVERS.test(s));
  assert.deepEqual(drivers, []);
  assert.ok(
    graph.some((s) => s.includes("logtape")),
    "expected LogTape in the graph",
  );
});

async function* tsFiles(dir: string): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) yield* tsFiles(path);
    else if (entry.name.endsWith(".ts")) yield path;
  }
}

Deno.test("the domain and application layers import no driver and no adapter", async () => {
  for (const layer of ["src/domain", "src/application"]) {
    for await (const file of tsFiles(`${root}${layer}`)) {
      const text = await Deno.readTextFile(file);
      // Import statements start a line; examples in doc comments do not.
      const imports = [
        ...text.matchAll(/^(?:import|export)\b[^;]*?from\s+"([^"]+)"/gm),
      ]
        .map((m) => m[1]!);
      for (const spec of imports) {
        assert.ok(
          !/^(npm:)?(postgres|pg-boss|pg|@electric-sql)/.test(spec) &&
            !spec.includes("/adapters/"),
          `${file} imports ${spec}`,
        );
        if (layer === "src/domain") {
          assert.ok(
            spec.startsWith("."),
            `${file} imports ${spec}: the domain imports nothing else`,
          );
        }
      }
    }
  }
});

Deno.test("the library never configures logging", async () => {
  for await (const file of tsFiles(`${root}src`)) {
    if (file.includes("/src/dev/")) continue;
    const text = await Deno.readTextFile(file);
    assert.ok(!/\bconfigure(Sync)?\(/.test(text), `${file} configures LogTape`);
    assert.ok(
      !/\bconsole\./.test(text.replace(/^\s*\*.*$/gm, "")),
      `${file} prints`,
    );
  }
});

Deno.test("the dashboard entry point imports other adapters as types only and no driver", async () => {
  for await (const file of tsFiles(`${root}src/adapters/dashboard`)) {
    const text = await Deno.readTextFile(file);
    const imports = [
      ...text.matchAll(/^(import|export)\b([^;]*?)from\s+"([^"]+)"/gm),
    ];
    for (const [, , clause, spec] of imports) {
      assert.ok(
        !/^(npm:)?(postgres|pg-boss|pg|@electric-sql)/.test(spec!),
        `${file} imports the driver ${spec}`,
      );
      if (/\/adapters\/|^\.\.\/(postgres|pg-boss|pglite)\//.test(spec!)) {
        assert.match(
          clause!,
          /^\s*type\b/,
          `${file} imports ${spec} at run time: the dashboard works on the sources it is given (import type only)`,
        );
      }
    }
  }
});
