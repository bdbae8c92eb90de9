// The README's Speed table is the one bench/compare/readme_table.ts prints
// from docs/bench/samples.json: no figure in it that the harness did not
// measure, and none left from an older run.
import assert from "node:assert/strict";

const root = new URL("../../", import.meta.url);

Deno.test("README's Speed table is the table printed from docs/bench/samples.json", async () => {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--frozen",
      new URL("bench/compare/readme_table.ts", root).pathname,
    ],
    cwd: root.pathname,
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  const printed = new TextDecoder().decode(stdout).trim().split("\n");
  assert.ok(printed.length > 20, "the table has its rows");
  // deno fmt pads the README's cells: compare cell by cell.
  const cells = (line: string) => line.split("|").map((c) => c.trim());
  const readme = await Deno.readTextFile(new URL("README.md", root));
  const lines = readme.split("\n");
  const start = lines.findIndex((l) => cells(l)[1] === "measurement");
  assert.ok(start >= 0, "README has the Speed table");
  const table = lines.slice(start).filter((_, i, all) =>
    all.slice(0, i + 1).every((l) => l.startsWith("|"))
  );
  assert.deepEqual(
    table.filter((_, i) => i !== 1).map(cells),
    printed.filter((_, i) => i !== 1).map(cells),
  );
});
