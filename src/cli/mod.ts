/**
 * The `aftercommit` command line: see and repair the outbox's parked events
 * and pg-boss dead letters (`deno run -A jsr:@aftercommit/core/cli --help`);
 * a command that changes rows asks first unless `--yes` is given.
 *
 * @example Run a command from code, on a database you opened
 * ```ts
 * import assert from "node:assert/strict";
 * import postgres from "postgres";
 * import { main } from "@aftercommit/core/cli";
 * import { startEmbeddedPostgres } from "@aftercommit/core/embedded";
 * import { migrateOutbox, OutboxAdmin } from "@aftercommit/core/postgres";
 *
 * await using db = await startEmbeddedPostgres();
 * const sql = db.connect(postgres);
 * await migrateOutbox(sql);
 * let out = "";
 * const write = (text: string) => void (out += text);
 * const io = { out: write, err: write, confirm: () => Promise.resolve(false) };
 * const code = await main(["stats", "--json"], io, {
 *   openOutbox: () =>
 *     Promise.resolve({ admin: new OutboxAdmin(sql), close: async () => {} }),
 * });
 * assert.equal(code, 0);
 * assert.equal(JSON.parse(out).parked, 0);
 * assert.equal(await main(["requeue"], io), 2); // needs --id, --type or --all
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import postgres from "postgres";
import {
  OutboxAdmin,
  type OutboxStats,
  type ParkedSelection,
} from "../adapters/postgres/outbox_admin.ts";
import type { DeadLetterSelection } from "../adapters/pg-boss/dead_letters.ts";
import { PgBossJobQueue } from "../adapters/pg-boss/pg_boss_job_queue.ts";
import { fail, text } from "../internal/rules.ts";

/** Where the CLI writes and how it asks. */
export interface CliIo {
  /** Writes `text` to standard output (a line ends with "\n"). */
  out(text: string): void;
  /** Writes `text` to standard error (a line ends with "\n"). */
  err(text: string): void;
  /** Asks a yes/no question; resolves `false` unless the user says yes. */
  confirm(question: string): Promise<boolean>;
}

/** The outbox operations the CLI uses: an {@linkcode OutboxAdmin} has them. */
export type OutboxAdminLike = Pick<
  OutboxAdmin,
  "stats" | "listParked" | "countParked" | "requeueParked" | "purgeParked"
>;

/** The dead-letter operations the CLI uses: a `PgBossJobQueue` has them. */
export type DeadLetterAdminLike = Pick<
  PgBossJobQueue,
  | "deadLetters"
  | "countDeadLetters"
  | "retryDeadLetters"
  | "deleteDeadLetters"
>;

/** Overrides of how the CLI opens the databases (tests, embedded setups). */
export interface CliDependencies {
  /** Opens the outbox of the application database (`--table`, if given). */
  openOutbox?(
    table: string | undefined,
  ): Promise<{ admin: OutboxAdminLike; close(): Promise<void> }>;
  /** Opens the jobs database (`--schema`, the pg-boss schema, if given). */
  openJobs?(
    schema: string | undefined,
  ): Promise<{ jobs: DeadLetterAdminLike; close(): Promise<void> }>;
}

const USAGE = `Usage: aftercommit <command> [options]

Outbox (application database: --database-url or DATABASE_URL)
  stats                                 counts: pending, in flight, parked, done, oldest pending age
  parked [--type T] [--limit N] [--payload]
                                        list parked events (no event fields unless --payload)
  requeue (--id ID... | --type T | --all) [--yes]
                                        dispatch parked events again, with fresh attempts
  purge (--id ID... | --type T | --all) [--yes]
                                        delete parked events for good

Dead letters (jobs database: --jobs-url or JOB_QUEUE_DATABASE_URL)
  dead-letters [list] [--queue Q] [--limit N] [--data]
                                        list jobs whose retries are used up (no data unless --data)
  dead-letters retry (--id ID... | --queue Q | --all) [--yes]
                                        send them back to their queue as new jobs
  dead-letters delete (--id ID... | --queue Q | --all) [--yes]
                                        delete them for good

Options
  --table NAME      the outbox table (default aftercommit_outbox)
  --schema NAME     the pg-boss schema (default pgboss)
  --json            machine-readable output
  --yes, -y         do not ask before changing rows
  --help, -h        this text
`;

const OPTIONS = {
  "database-url": { type: "string" },
  "jobs-url": { type: "string" },
  table: { type: "string" },
  schema: { type: "string" },
  type: { type: "string" },
  queue: { type: "string" },
  id: { type: "string", multiple: true },
  all: { type: "boolean" },
  limit: { type: "string" },
  payload: { type: "boolean" },
  data: { type: "boolean" },
  json: { type: "boolean" },
  yes: { type: "boolean", short: "y" },
  help: { type: "boolean", short: "h" },
} as const;

type Values = ReturnType<
  typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>
>["values"];
type Method = keyof OutboxAdminLike | keyof DeadLetterAdminLike;

// Each database: its flags, what a selection or list filters by, a row's
// noun, the flag and option that show its fields, how to count.
const DATABASES = {
  outbox: {
    flags: ["database-url", "table"],
    by: "type",
    noun: "parked event",
    fields: "payload",
    include: "includePayload",
    count: "countParked",
  },
  jobs: {
    flags: ["jobs-url", "schema"],
    by: "queue",
    noun: "dead letter",
    fields: "data",
    include: "includeData",
    count: "countDeadLetters",
  },
} as const;

// Each command ("dead-letters …" on the jobs database): the method it calls
// and, if it changes rows, what it asks and says ("#" is the count).
const COMMANDS: Record<string, { call: Method; ask?: string; done?: string }> =
  {
    stats: { call: "stats" },
    parked: { call: "listParked" },
    requeue: {
      call: "requeueParked",
      ask: "Requeue #?",
      done: "Requeued #; the relay dispatches them at its next pass.",
    },
    purge: { call: "purgeParked", ask: "Purge # for good?", done: "Purged #." },
    "dead-letters list": { call: "deadLetters" },
    "dead-letters retry": {
      call: "retryDeadLetters",
      ask: "Retry # in their original queues?",
      done: "Retried # in their original queues.",
    },
    "dead-letters delete": {
      call: "deleteDeadLetters",
      ask: "Delete # for good?",
      done: "Deleted #.",
    },
  };

interface Command {
  name: string;
  db: keyof typeof DATABASES;
  values: Values;
  limit: number;
  selection: ParkedSelection | DeadLetterSelection | undefined;
}

/**
 * Runs one CLI command (`args` as in `Deno.args`) and returns its exit code:
 * 0 done, 1 declined or failed, 2 bad arguments.
 */
export async function main(
  args: readonly string[],
  io: CliIo = terminal(),
  dependencies: CliDependencies = {},
): Promise<number> {
  let command: Command | "help" | undefined;
  try {
    command = parseCommand([...args]);
    if (command === "help") {
      io.out(USAGE);
      return 0;
    }
    return await run(command, io, dependencies);
  } catch (error) {
    // Bad arguments, ours or the API's own checks (a queue name, say).
    if (error instanceof TypeError || error instanceof RangeError) {
      const help = command === undefined
        ? "\nRun with --help for usage.\n"
        : "";
      io.err(`aftercommit: ${error.message}\n${help}`);
      return 2;
    }
    const shown = error instanceof Error
      ? `${error.name}: ${error.message}`
      : error;
    io.err(`aftercommit: ${shown}\n`);
    return 1;
  }
}

// Every argument is checked here, before anything is opened.
function parseCommand(args: string[]): Command | "help" {
  const { values, positionals, tokens } = parseArgs({
    args,
    options: OPTIONS,
    allowPositionals: true,
    strict: true,
    tokens: true,
  });
  if (values.help || positionals.length === 0) return "help";
  // parseArgs keeps the last of a repeated flag: only --id may repeat.
  const names = tokens.flatMap((t) => t.kind === "option" ? [t.name] : []);
  const twice = names.find((n, i) => n !== "id" && names.indexOf(n) !== i);
  if (twice !== undefined) {
    fail(
      "read the arguments",
      `--${twice} was given twice; pass it once (only --id repeats)`,
    );
  }
  const [first, ...rest] = positionals;
  const db = first === "dead-letters" ? "jobs" : "outbox";
  const name = db === "jobs"
    ? `dead-letters ${rest.shift() ?? "list"}`
    : first!;
  if (!Object.hasOwn(COMMANDS, name)) {
    const use = db === "jobs"
      ? "dead-letters list, retry or delete"
      : "stats, parked, requeue, purge or dead-letters";
    fail(`run ${JSON.stringify(name)}`, `no such command; use ${use}`);
  }
  const { ask } = COMMANDS[name]!;
  const { by, fields, flags } = DATABASES[db];
  const action = `run ${name}`;
  if (rest.length > 0) {
    fail(action, `unexpected argument ${JSON.stringify(rest[0])}`);
  }
  const own = name === "stats"
    ? []
    : ask
    ? [by, "id", "all", "yes"]
    : [by, "limit", fields];
  const takes: string[] = [...own, ...flags, "json"];
  const stray = Object.keys(values).find((flag) => !takes.includes(flag));
  if (stray !== undefined) {
    const list = takes.map((f) => `--${f}`).join(", ");
    fail(action, `--${stray} does not apply; it takes ${list}`);
  }
  const limit = Number(values.limit ?? 100);
  if (!/^\d+$/.test(values.limit ?? "1") || limit < 1 || limit > 10_000) {
    const received = JSON.stringify(values.limit);
    fail(
      action,
      `--limit must be a whole number from 1 to 10000, received ${received}`,
    );
  }
  // Checked, listed and sent trimmed.
  if (values[by] !== undefined) values[by] = values[by].trim();
  if (values.id) values.id = values.id.map((id) => id.trim());
  if (!ask) return { name, db, values, limit, selection: undefined };
  // The rows a change applies to.
  const { id: ids, all } = values;
  const value = values[by];
  if ([ids, value, all].filter((v) => v !== undefined).length !== 1) {
    fail(action, `pass exactly one of --id (repeatable), --${by} or --all`);
  }
  for (const id of ids ?? []) text()(id, "--id", action);
  if (value !== undefined) text()(value, `--${by}`, action);
  const selection = ids ? { ids } : all ? { all: true } : { [by]: value };
  return { name, db, values, limit, selection: selection as never };
}

function url(given: string | undefined, variable: string, flag: string) {
  const value = given ?? Deno.env.get(variable);
  const named = given === undefined ? variable : `--${flag}`;
  if (!value || !/^postgres(ql)?:\/\//.test(value)) {
    fail(
      "open the database",
      value
        ? `${named} must be a postgres:// URL`
        : `pass --${flag} or set ${variable} (an embedded PGlite database can be opened by one process only; use the dev server's admin endpoints for it)`,
    );
  }
  return value;
}

async function run(
  { name, db, values, limit, selection }: Command,
  io: CliIo,
  dependencies: CliDependencies,
): Promise<number> {
  const { call, ask, done } = COMMANDS[name]!;
  const { by, noun, fields, include, count } = DATABASES[db];
  const {
    openOutbox = async (table) => {
      const sql = postgres(
        url(values["database-url"], "DATABASE_URL", "database-url"),
        { max: 1, onnotice: () => {} },
      );
      try {
        return {
          admin: new OutboxAdmin(sql, table === undefined ? {} : { table }),
          close: () => sql.end({ timeout: 5 }),
        };
      } catch (error) {
        await sql.end({ timeout: 5 });
        throw error;
      }
    },
    openJobs = async (schema) => {
      const jobs = await PgBossJobQueue.connect(
        url(values["jobs-url"], "JOB_QUEUE_DATABASE_URL", "jobs-url"),
        {
          supervise: false,
          listenNotify: false,
          maxConnections: 2,
          // A mistyped --schema or --jobs-url must not get a new schema.
          migrate: false,
          ...(schema === undefined ? {} : { schema }),
        },
      ).catch((error) => {
        // No pg-boss tables of this version there: connect()'s reason, with
        // the flags to check.
        if (error instanceof TypeError && error.cause !== undefined) {
          error.message = error.message.replace(
            /; [^;]*$/,
            "; check --schema (default pgboss) and --jobs-url; the CLI installs and migrates no schema (the application does when it connects), and reads only its own pg-boss version's: after an upgrade, run the CLI of the application's release",
          );
        }
        throw error;
      });
      return { jobs, close: () => jobs.stop() };
    },
  } = dependencies;
  const opened = db === "outbox"
    ? await openOutbox(values.table)
    : await openJobs(values.schema);
  // The commands differ in the method they call, not in how they call it.
  const source = ("admin" in opened ? opened.admin : opened.jobs) as unknown as // deno-lint-ignore no-explicit-any
  Record<Method, (argument?: unknown) => Promise<any>>;
  try {
    if (ask) {
      const said = (changed: number, text: string) => {
        io.out(`${values.json ? JSON.stringify({ changed }) : text}\n`);
        return 0;
      };
      const n: number = await source[count](selection);
      if (n === 0) return said(0, `No ${noun}s match; nothing changed.`);
      const which = values.all
        ? "all"
        : values.id
        ? plural(values.id.length, "id")
        : `${by} ${values[by]}`;
      const question = ask.replace("#", `${plural(n, noun)} (${which})`);
      if (!values.yes && !(await io.confirm(`${question} [y/N] `))) {
        io.err("Aborted; nothing changed.\n");
        return 1;
      }
      const changed: number = await source[call](selection);
      return said(changed, done!.replace("#", plural(changed, noun)));
    }
    if (call === "stats") {
      const s: OutboxStats = await source.stats();
      const oldest = s.oldestPendingAgeSeconds;
      return show(io, values, s, [
        ["pending", "in flight", "parked", "done", "oldest pending"],
        [s.pending, s.inFlight, s.parked, s.done].map(String)
          .concat(oldest === null ? "-" : age(oldest)),
      ]);
    }
    const shown = values[fields] === true;
    const rows: Record<string, unknown>[] = await source[call](
      { [by]: values[by], limit, [include]: shown },
    );
    const error = db === "outbox" ? "lastError" : "error";
    return show(io, values, rows, [
      ["id", by, "attempts", "age", db === "outbox" ? "last error" : "error"]
        .concat(shown ? [fields] : []),
      ...rows.map((r) =>
        [r.id, r[by], r.attempts ?? "-", age(r.ageSeconds as number)]
          .map(String)
          .concat(String(r[error] ?? ""))
          .concat(shown ? [JSON.stringify(r[fields])] : [])
      ),
    ], `No ${noun}s.`);
  } finally {
    await opened.close();
  }
}

// Prints `value` as JSON, or `rows` (a header, then one row per item) as a
// table of cells clipped to 80 characters.
function show(
  io: CliIo,
  values: Values,
  value: unknown,
  rows: string[][],
  empty = "",
): number {
  const clip = (cell: string): string => {
    const line = cell.replaceAll("\n", " ");
    return line.length > 80 ? `${line.slice(0, 79)}…` : line;
  };
  const cells = rows.map((row, r) => r === 0 ? row : row.map(clip));
  const widths = cells[0]!.map((_, i) =>
    Math.max(...cells.map((row) => row[i]!.length))
  );
  const table = cells.map((row) =>
    row.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()
  );
  const text = values.json
    ? JSON.stringify(value)
    : rows.length === 1
    ? empty
    : table.join("\n");
  io.out(`${text}\n`);
  return 0;
}

function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? "" : "s"}`;
}

function age(seconds: number): string {
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86_400) {
    return `${Math.floor(s / 3600)}h ${Math.floor(s % 3600 / 60)}m`;
  }
  return `${Math.floor(s / 86_400)}d ${Math.floor(s % 86_400 / 3600)}h`;
}

/** The terminal's {@linkcode CliIo}: anything but a y/yes line is a no. */
export function terminal(): CliIo {
  const encoder = new TextEncoder();
  const write = (file: typeof Deno.stdout, text: string): void => {
    const bytes = encoder.encode(text);
    for (let at = 0; at < bytes.length;) {
      at += file.writeSync(bytes.subarray(at));
    }
  };
  return {
    out: (text) => write(Deno.stdout, text),
    err: (text) => write(Deno.stderr, text),
    async confirm(question) {
      write(Deno.stderr, question);
      // Byte by byte, so that nothing after the line is taken from stdin.
      const line: number[] = [];
      const byte = new Uint8Array(1);
      while (await Deno.stdin.read(byte) === 1 && byte[0] !== 10) {
        line.push(byte[0]!);
      }
      const answer = new TextDecoder().decode(new Uint8Array(line));
      return /^\s*y(es)?\s*$/i.test(answer);
    },
  };
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
