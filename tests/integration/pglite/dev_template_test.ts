import assert from "node:assert/strict";
import { PGlite } from "@electric-sql/pglite";
import { prepareDataDirs } from "../../../src/dev/pglite_template.ts";

async function rows(dir: string, sql: string): Promise<unknown[]> {
  const db = await PGlite.create(dir);
  try {
    const results = await db.exec(sql);
    return results[results.length - 1]!.rows;
  } finally {
    await db.close();
  }
}

Deno.test("prepareDataDirs() starts new data folders from one template; each is a working, independent database", async () => {
  const root = await Deno.makeTempDir({ prefix: "aftercommit_template_" });
  try {
    const template = `${root}/cache`;
    const a = `${root}/data/a`, b = `${root}/data/b`, c = `${root}/data/c`;
    // A folder that exists but is empty is new; a half-written copy a killed
    // start left beside it is removed.
    await Deno.mkdir(b, { recursive: true });
    await Deno.mkdir(`${root}/data/a.tmp-1-dead`);
    await Deno.writeTextFile(`${root}/data/a.tmp-1-dead/PG_VERSION`, "17\n");

    assert.deepEqual(await prepareDataDirs([a, b], template), [a, b]);
    const left = [];
    for await (const e of Deno.readDir(`${root}/data`)) left.push(e.name);
    assert.deepEqual(left.sort(), ["a", "b"]);

    await rows(a, "CREATE TABLE t (v text); INSERT INTO t VALUES ('in a')");
    assert.deepEqual(
      await rows(b, "SELECT to_regclass('t') IS NULL AS missing"),
      [{ missing: true }],
    );
    await rows(b, "CREATE TABLE t (v text); INSERT INTO t VALUES ('in b')");

    // A folder that holds a database is left alone; a later new one reuses
    // the template (and does not see the others' data).
    assert.deepEqual(await prepareDataDirs([a, c], template), [c]);
    assert.deepEqual(await rows(a, "SELECT v FROM t"), [{ v: "in a" }]);
    assert.deepEqual(await rows(b, "SELECT v FROM t"), [{ v: "in b" }]);
    assert.deepEqual(
      await rows(c, "SELECT to_regclass('t') IS NULL AS missing"),
      [{ missing: true }],
    );
    // The template itself stays fresh.
    assert.deepEqual(
      await rows(
        `${template}/data`,
        "SELECT to_regclass('t') IS NULL AS missing",
      ),
      [{ missing: true }],
    );
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("prepareDataDirs() leaves new folders to PGlite when it cannot make a template", async () => {
  const root = await Deno.makeTempDir({ prefix: "aftercommit_template_" });
  try {
    // The template's folder cannot be created: a file is in the way.
    await Deno.writeTextFile(`${root}/cache`, "");
    assert.deepEqual(
      await prepareDataDirs([`${root}/data/a`], `${root}/cache/pglite`),
      [],
    );
    const left = [];
    for await (const e of Deno.readDir(root)) left.push(e.name);
    assert.deepEqual(left, ["cache"]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
