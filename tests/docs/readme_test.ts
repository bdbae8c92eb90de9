// The README works as written: every ```ts block is run (not only type
// checked) as its own program, on embedded databases (DATABASE_URL and
// JOB_QUEUE_DATABASE_URL unset), and must exit 0 within a minute; every
// `deno task …` a ```sh block names exists.
//
// A block that must not run is marked on the line before its fence with
//   <!-- readme-test: skip (the reason) -->
// or fenced ```ts ignore (Deno's own marker: neither checked nor run).
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url);
const README = new URL("README.md", ROOT);
const CONFIG = new URL("deno.json", ROOT);
const TIMEOUT_MS = 60_000;

/** A fenced block of the README. */
export interface Block {
  /** The info string after the fence: `ts`, `ts ignore`, `sh`, … */
  readonly info: string;
  readonly code: string;
  /** The 1-based line of the opening fence. */
  readonly line: number;
  /** The heading the block is under. */
  readonly section: string;
  /** Whether a `<!-- readme-test: skip … -->` line precedes the fence. */
  readonly skipped: boolean;
}

/** The fenced blocks of a Markdown text. */
export function fencedBlocks(markdown: string): Block[] {
  const lines = markdown.split("\n");
  const blocks: Block[] = [];
  let section = "(top)";
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    const heading = /^#{1,6}\s+(.*)$/.exec(line);
    if (heading) section = heading[1]!;
    // A fence may be indented (a block inside a list item).
    const fence = /^( *)(`{3,})(.*)$/.exec(line);
    if (!fence) continue;
    const [, indent = "", ticks = "", info = ""] = fence;
    const end = lines.findIndex((l, j) =>
      j > i && l.startsWith(indent + ticks) && l.trim() === ticks
    );
    if (end < 0) break;
    blocks.push({
      info: info.trim(),
      code: lines.slice(i + 1, end)
        .map((l) => l.startsWith(indent) ? l.slice(indent.length) : l)
        .join("\n"),
      line: i + 1,
      section,
      skipped: /^\s*<!--\s*readme-test:\s*skip\b/.test(lines[i - 1] ?? ""),
    });
    i = end;
  }
  return blocks;
}

function isTypeScript(info: string): boolean {
  const [lang = "", ...attrs] = info.split(/\s+/);
  return /^(ts|typescript)$/i.test(lang) && !attrs.includes("ignore");
}

/** This process's environment without the database URLs. */
function embeddedEnv(): Record<string, string> {
  const env = Deno.env.toObject();
  for (const name of Object.keys(env)) {
    if (/DATABASE_URL$/.test(name)) delete env[name];
  }
  return { ...env, NO_COLOR: "1" };
}

const markdown = await Deno.readTextFile(README);
const blocks = fencedBlocks(markdown);

Deno.test("fencedBlocks() finds fences, sections and skip markers", () => {
  const found = fencedBlocks(
    "# A\n```ts\nconst a = 1;\n```\n## B\n<!-- readme-test: skip needs a server -->\n```ts\nx\n```\n```sh\ndeno task dev\n```\n- item:\n\n  ```ts ignore\n  y;\n    z;\n  ```\n",
  );
  assert.deepEqual(
    found.map((b) => [b.info, b.code, b.line, b.section, b.skipped]),
    [
      ["ts", "const a = 1;", 2, "A", false],
      ["ts", "x", 7, "B", true],
      ["sh", "deno task dev", 10, "B", false],
      ["ts ignore", "y;\n  z;", 15, "B", false],
    ],
  );
});

Deno.test({
  name: "every README TypeScript block runs and exits 0 on embedded databases",
  async fn(t) {
    const runnable = blocks.filter((b) => isTypeScript(b.info));
    assert.ok(runnable.length >= 5, "the README has TypeScript examples");
    const dir = await Deno.makeTempDir({ prefix: "aftercommit-readme-" });
    try {
      for (const block of runnable) {
        const name = `line ${block.line} (${block.section})`;
        await t.step({
          name,
          ignore: block.skipped,
          fn: async () => {
            const file = `${dir}/readme_${block.line}.ts`;
            await Deno.writeTextFile(file, `${block.code}\n`);
            const child = new Deno.Command(Deno.execPath(), {
              args: [
                "run",
                "-A",
                "--frozen",
                "--config",
                CONFIG.pathname,
                file,
              ],
              cwd: dir,
              // Unset, not empty: postgres("") would reach localhost:5432.
              clearEnv: true,
              env: embeddedEnv(),
              stdout: "piped",
              stderr: "piped",
            }).spawn();
            const timer = setTimeout(() => child.kill("SIGKILL"), TIMEOUT_MS);
            const out = await child.output().finally(() => clearTimeout(timer));
            const text = new TextDecoder().decode(out.stdout) +
              new TextDecoder().decode(out.stderr);
            assert.equal(
              out.code,
              0,
              out.signal === "SIGKILL"
                ? `README ${name} did not exit within ${TIMEOUT_MS} ms:\n${text}`
                : `README ${name} exited ${out.code}:\n${text}`,
            );
          },
        });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("every `deno task` the README names exists in deno.json", async () => {
  const { tasks } = JSON.parse(await Deno.readTextFile(CONFIG)) as {
    tasks: Record<string, string>;
  };
  const named = blocks
    .filter((b) => /^(sh|bash|shell)$/.test(b.info))
    .flatMap((b) => [...b.code.matchAll(/deno task ([\w:-]+)/g)])
    .map((m) => m[1]!);
  assert.ok(named.length > 0);
  for (const task of named) {
    assert.ok(
      task in tasks,
      `README names "deno task ${task}", deno.json has no such task`,
    );
  }
});
