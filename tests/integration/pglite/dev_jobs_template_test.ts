import assert from "node:assert/strict";
import { PGlite } from "@electric-sql/pglite";
import {
  buildTemplate,
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

Deno.test("a new folder of a kind starts from that kind's template once buildTemplate() has made it, once, on a copy of the fresh one", async () => {
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
    // No template of the kind yet: the fresh one, and no build on the way.
    assert.deepEqual(await prepareDataDirs([a, b], template, { [b]: kind }), [
      a,
      b,
    ]);
    assert.equal(builds, 0);
    assert.equal(await hasTable(b, "k"), false);

    await buildTemplate(template, kind);
    await buildTemplate(template, kind);
    assert.equal(builds, 1);
    assert.deepEqual(await names(template), ["data", "with-k"]);

    assert.deepEqual(await prepareDataDirs([c], template, { [c]: kind }), [c]);
    assert.equal(await hasTable(c, "k"), true);
    assert.equal(await hasTable(a, "k"), false);
    assert.equal(await hasTable(`${template}/data`, "k"), false);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("buildTemplate() needs the fresh template, and a failed build leaves nothing behind", async () => {
  const root = await Deno.makeTempDir({ prefix: "aftercommit_template_" });
  try {
    const template = `${root}/cache`;
    let builds = 0;
    const broken: TemplateKind = {
      name: "broken",
      build: () => {
        builds++;
        return Promise.reject(new Error("no"));
      },
    };
    await buildTemplate(template, broken);
    assert.equal(builds, 0);

    const a = `${root}/data/a`;
    await prepareDataDirs([a], template);
    await buildTemplate(template, broken);
    assert.equal(builds, 1);
    assert.deepEqual(await names(template), ["data"]);
    const b = `${root}/data/b`;
    assert.deepEqual(await prepareDataDirs([b], template, { [b]: broken }), [
      b,
    ]);
    assert.equal(await hasTable(b, "pg_class"), true);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("pgBossTemplate() is named after the installed pg-boss and builds its schema", async () => {
  const kind = pgBossTemplate();
  assert.match(kind?.name ?? "", /^pg-boss-\d+\.\d+\.\d+/);
  const root = await Deno.makeTempDir({ prefix: "aftercommit_template_" });
  try {
    const template = `${root}/cache`;
    const app = `${root}/data/app`, jobs = `${root}/data/jobs`;
    await prepareDataDirs([app], template);
    await buildTemplate(template, kind!);
    await prepareDataDirs([jobs], template, { [jobs]: kind! });
    assert.equal(await hasTable(jobs, "pgboss.job"), true);
    assert.equal(await hasTable(app, "pgboss.job"), false);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
