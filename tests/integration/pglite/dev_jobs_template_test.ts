import assert from "node:assert/strict";
import { PGlite } from "@electric-sql/pglite";
import {
  prepareDataDirs,
  type TemplateKind,
} from "../../../src/dev/pglite_template.ts";
import { pgBossTemplate } from "../../../src/dev/jobs_template.ts";

async function hasTable(dir: string, table: string): Promise<boolean> {
  const db = await PGlite.create(dir);
  try {
    const { rows } = await db.query<{ found: boolean }>(
      "SELECT to_regclass($1) IS NOT NULL AS found",
      [table],
    );
    return rows[0]!.found;
  } finally {
    await db.close();
  }
}

async function names(dir: string): Promise<string[]> {
  const found = [];
  for await (const e of Deno.readDir(dir)) found.push(e.name);
  return found.sort();
}

Deno.test("prepareDataDirs() starts a folder of a kind from that kind's template, built once on a copy of the fresh one", async () => {
  const root = await Deno.makeTempDir({ prefix: "aftercommit_template_" });
  try {
    const template = `${root}/cache`;
    const a = `${root}/data/a`, b = `${root}/data/b`, c = `${root}/data/c`;
    let builds = 0;
    const kind: TemplateKind = {
      name: "with-k",
      async build(dir) {
        builds++;
        const db = await PGlite.create(dir);
        await db.exec("CREATE TABLE k (v int)");
        await db.close();
      },
    };
    assert.deepEqual(await prepareDataDirs([a, b], template, { [b]: kind }), [
      a,
      b,
    ]);
    assert.equal(builds, 1);
    assert.equal(await hasTable(a, "k"), false);
    assert.equal(await hasTable(b, "k"), true);
    assert.deepEqual(await names(template), ["data", "with-k"]);

    assert.deepEqual(await prepareDataDirs([c], template, { [c]: kind }), [c]);
    assert.equal(builds, 1);
    assert.equal(await hasTable(c, "k"), true);
    assert.equal(await hasTable(`${template}/data`, "k"), false);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("prepareDataDirs() starts a folder from the fresh template when its kind's cannot be built", async () => {
  const root = await Deno.makeTempDir({ prefix: "aftercommit_template_" });
  try {
    const template = `${root}/cache`;
    const a = `${root}/data/a`;
    const kind: TemplateKind = {
      name: "broken",
      build: () => Promise.reject(new Error("no")),
    };
    assert.deepEqual(await prepareDataDirs([a], template, { [a]: kind }), [a]);
    assert.equal(await hasTable(a, "pg_class"), true);
    assert.deepEqual(await names(template), ["data"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("pgBossTemplate() is named after the installed pg-boss and builds its schema", async () => {
  const kind = pgBossTemplate();
  assert.match(kind?.name ?? "", /^pg-boss-\d+\.\d+\.\d+/);
  const root = await Deno.makeTempDir({ prefix: "aftercommit_template_" });
  try {
    const jobs = `${root}/data/jobs`;
    await prepareDataDirs([jobs], `${root}/cache`, { [jobs]: kind! });
    assert.equal(await hasTable(jobs, "pgboss.job"), true);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
