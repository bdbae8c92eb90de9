// The benches and the browser tests keep their packages in their own configs
// and lockfiles (bench/bench.json, tests/browser/browser.json), so that
// `deno task dev` on a new machine installs only deno.lock: the library's,
// the dev server's and the test suite's packages. Each of those configs must
// still resolve the library's imports as deno.json does, patched postgres.js
// included, and the tasks that run those files must use it.
import assert from "node:assert/strict";

const root = new URL("../../", import.meta.url);

interface Config {
  imports: Record<string, string>;
  scopes?: Record<string, Record<string, string>>;
  links?: string[];
  lock?: string;
  nodeModulesDir?: string;
  compilerOptions?: unknown;
  tasks?: Record<string, string>;
}

const read = async (path: string): Promise<Config> =>
  JSON.parse(await Deno.readTextFile(new URL(path, root)));

const TOOLS = {
  "bench/bench.json": {
    packages: ["emittery", "eventemitter3", "graphile-worker", "mitt"],
    tasks: ["bench", "bench:compare"],
  },
  "tests/browser/browser.json": {
    packages: ["puppeteer-core"],
    tasks: ["test:browser"],
  },
};

Deno.test("deno.lock holds no package that only the benches or the browser tests use", async () => {
  const project = await read("deno.json");
  const lock = JSON.parse(
    await Deno.readTextFile(new URL("deno.lock", root)),
  ) as { specifiers: Record<string, string> };
  const mapped = JSON.stringify([
    project.imports,
    (project as {
      scopes?: unknown;
    }).scopes,
  ]);
  for (const { packages } of Object.values(TOOLS)) {
    for (const name of packages) {
      assert.ok(!mapped.includes(`npm:${name}@`), `deno.json maps ${name}`);
      assert.ok(
        !Object.keys(lock.specifiers).some((s) => s.startsWith(`npm:${name}@`)),
        `deno.lock holds ${name}`,
      );
    }
  }
});

for (const [path, { packages, tasks }] of Object.entries(TOOLS)) {
  Deno.test(`${path} resolves the library's imports as deno.json does, with its own lockfile`, async () => {
    const project = await read("deno.json");
    const config = await read(path);
    const dir = new URL(".", new URL(path, root));
    for (const [name, target] of Object.entries(project.imports)) {
      assert.equal(config.imports[name], target, `${path}: ${name}`);
    }
    for (const name of packages) assert.ok(config.imports[name], name);
    // The patched postgres.js (vendor/postgres), as deno.json links it.
    assert.deepEqual(
      (config.links ?? []).map((l) => new URL(l, dir).href),
      (project.links ?? []).map((l) => new URL(l, root).href),
    );
    assert.equal(config.nodeModulesDir, project.nodeModulesDir);
    assert.deepEqual(config.compilerOptions, project.compilerOptions);
    assert.ok(config.lock, `${path} names its lockfile`);
    await Deno.stat(new URL(config.lock, dir));
    for (const task of tasks) {
      assert.match(project.tasks![task]!, new RegExp(`--config ${path} `));
    }
    assert.match(project.tasks!.check!, new RegExp(`--config ${path} `));
  });
}
