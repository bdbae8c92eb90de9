/**
 * The `aftercommit` command line: see and repair the outbox's parked events
 * and pg-boss dead letters (`deno run -A jsr:@aftercommit/core/cli --help`).
 * Commands that change rows ask first unless `--yes` is given. The databases
 * come from `--database-url` or `DATABASE_URL` and `--jobs-url` or
 * `JOB_QUEUE_DATABASE_URL`.
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
 * const io = {
 *   out: (text: string) => void (out += text),
 *   err: (text: string) => void (out += text),
 *   confirm: () => Promise.resolve(false),
 * };
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
import { OutboxAdmin } from "../adapters/postgres/outbox_admin.ts";
import type { ParkedSelection } from "../adapters/postgres/outbox_admin.ts";
import {
  type DeadLetterSelection,
  PgBossJobQueue,
} from "../adapters/pg-boss/pg_boss_job_queue.ts";
import { fail, integer, text } from "../internal/rules.ts";

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
type Flag = keyof Values;
type Selection = ParkedSelection | DeadLetterSelection;

// What each command takes besides --json and its database's flags; a
// command that changes rows takes a selection (--id, --type/--queue, --all)
// and --yes.
const COMMANDS = {
  stats: { db: "outbox", flags: [] },
  parked: { db: "outbox", flags: ["type", "limit", "payload"] },
  requeue: { db: "outbox", flags: ["type", "id", "all", "yes"] },
  purge: { db: "outbox", flags: ["type", "id", "all", "yes"] },
  "dead-letters list": { db: "jobs", flags: ["queue", "limit", "data"] },
  "dead-letters retry": { db: "jobs", flags: ["queue", "id", "all", "yes"] },
  "dead-letters delete": { db: "jobs", flags: ["queue", "id", "all", "yes"] },
} as const satisfies Record<
  string,
  { db: "outbox" | "jobs"; flags: readonly Flag[] }
>;
type Name = keyof typeof COMMANDS;

const DB_FLAGS = {
  outbox: ["database-url", "table"],
  jobs: ["jobs-url", "schema"],
} as const;

interface Command {
  name: Name;
  values: Values;
  limit: number;
  selection: Selection | undefined;
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
    io.err(
      `aftercommit: ${
        error instanceof Error ? `${error.name}: ${error.message}` : error
      }\n`,
    );
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
  const seen = new Set<string>();
  for (const token of tokens) {
    if (token.kind !== "option" || token.name === "id") continue;
    if (seen.has(token.name)) {
      fail(
        "read the arguments",
        `--${token.name} was given twice; pass it once (only --id repeats)`,
      );
    }
    seen.add(token.name);
  }
  const [first, ...rest] = positionals;
  const name =
    (first === "dead-letters"
      ? `dead-letters ${rest.shift() ?? "list"}`
      : first) as Name;
  if (!Object.hasOwn(COMMANDS, name)) {
    fail(
      `run ${JSON.stringify(name)}`,
      `no such command; use ${
        first === "dead-letters"
          ? "dead-letters list, retry or delete"
          : "stats, parked, requeue, purge or dead-letters"
      }`,
    );
  }
  const { db, flags } = COMMANDS[name];
  const action = `run ${name}`;
  if (rest.length > 0) {
    fail(action, `unexpected argument ${JSON.stringify(rest[0])}`);
  }
  const takes: readonly string[] = [...flags, ...DB_FLAGS[db], "json"];
  for (const flag of Object.keys(values)) {
    if (!takes.includes(flag)) {
      fail(
        action,
        `--${flag} does not apply; it takes ${
          takes.map((f) => `--${f}`).join(", ")
        }`,
      );
    }
  }
  if (values.limit !== undefined && !/^\d+$/.test(values.limit)) {
    fail(
      action,
      `--limit must be a whole number from 1 to 10000, received ${
        JSON.stringify(values.limit)
      }`,
    );
  }
  const limit = integer(1, 10_000, 100)(
    values.limit === undefined ? undefined : Number(values.limit),
    "--limit",
    action,
  );
  const by = db === "outbox" ? "type" : "queue";
  const changes = takes.includes("all");
  const selection = changes ? select(values, by, action) : undefined;
  return { name, values, limit, selection };
}

// The rows a requeue, purge, retry or delete applies to.
function select(values: Values, by: "type" | "queue", action: string) {
  const { id: ids, all } = values;
  const value = values[by];
  if ([ids, value, all].filter((v) => v !== undefined).length !== 1) {
    fail(action, `pass exactly one of --id (repeatable), --${by} or --all`);
  }
  for (const id of ids ?? []) text()(id.trim(), "--id", action);
  if (value !== undefined) text()(value.trim(), `--${by}`, action);
  const selection = ids ? { ids } : all ? { all: true } : { [by]: value };
  return selection as Selection;
}

function url(given: string | undefined, variable: string, flag: string) {
  const value = given ?? Deno.env.get(variable);
  const action = "open the database";
  if (!value) {
    fail(
      action,
      `pass --${flag} or set ${variable} (an embedded PGlite database can be opened by one process only; use the dev server's admin endpoints for it)`,
    );
  }
  if (!/^postgres(ql)?:\/\//.test(value)) {
    fail(
      action,
      `${
        given === undefined ? variable : `--${flag}`
      } must be a postgres:// URL`,
    );
  }
  return value;
}

async function connectOutbox(values: Values, table: string | undefined) {
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
}

async function connectJobs(values: Values, schema: string | undefined) {
  const jobs = await PgBossJobQueue.connect(
    url(values["jobs-url"], "JOB_QUEUE_DATABASE_URL", "jobs-url"),
    {
      supervise: false,
      listenNotify: false,
      maxConnections: 2,
      ...(schema === undefined ? {} : { schema }),
    },
  );
  return { jobs, close: () => jobs.stop() };
}

async function run(
  command: Command,
  io: CliIo,
  dependencies: CliDependencies,
): Promise<number> {
  const { name, values } = command;
  const {
    openOutbox = (table) => connectOutbox(values, table),
    openJobs = (schema) => connectJobs(values, schema),
  } = dependencies;
  const db = COMMANDS[name].db === "outbox"
    ? await openOutbox(values.table)
    : await openJobs(values.schema);
  try {
    return "admin" in db
      ? await outbox(db.admin, command, io)
      : await deadLetters(db.jobs, command, io);
  } finally {
    await db.close();
  }
}

async function outbox(
  admin: OutboxAdminLike,
  { name, values, limit, selection }: Command,
  io: CliIo,
): Promise<number> {
  const payload = values.payload === true;
  if (name === "stats") {
    const s = await admin.stats();
    const oldest = s.oldestPendingAgeSeconds;
    return show(io, values, s, [
      ["pending", "in flight", "parked", "done", "oldest pending"],
      [
        ...[s.pending, s.inFlight, s.parked, s.done].map(String),
        oldest === null ? "-" : age(oldest),
      ],
    ]);
  }
  if (name === "parked") {
    const events = await admin.listParked({
      ...(values.type === undefined ? {} : { type: values.type }),
      limit,
      includePayload: payload,
    });
    return show(io, values, events, [
      [
        "id",
        "type",
        "attempts",
        "age",
        "last error",
        ...(payload ? ["payload"] : []),
      ],
      ...events.map((e) => [
        e.id,
        e.type,
        String(e.attempts),
        age(e.ageSeconds),
        e.lastError ?? "",
        ...(payload ? [JSON.stringify(e.payload)] : []),
      ]),
    ], "No parked events.");
  }
  const parked = selection as ParkedSelection;
  return await change(io, values, name, parked, {
    count: () => admin.countParked(parked),
    act: () =>
      name === "requeue"
        ? admin.requeueParked(parked)
        : admin.purgeParked(parked),
  });
}

async function deadLetters(
  jobs: DeadLetterAdminLike,
  { name, values, limit, selection }: Command,
  io: CliIo,
): Promise<number> {
  const data = values.data === true;
  if (name === "dead-letters list") {
    const letters = await jobs.deadLetters({
      ...(values.queue === undefined ? {} : { queue: values.queue }),
      limit,
      includeData: data,
    });
    return show(io, values, letters, [
      ["id", "queue", "attempts", "age", "error", ...(data ? ["data"] : [])],
      ...letters.map((l) => [
        l.id,
        l.queue,
        l.attempts === null ? "-" : String(l.attempts),
        age(l.ageSeconds),
        l.error ?? "",
        ...(data ? [JSON.stringify(l.data)] : []),
      ]),
    ], "No dead letters.");
  }
  const dead = selection as DeadLetterSelection;
  return await change(io, values, name, dead, {
    count: () => jobs.countDeadLetters(dead),
    act: () =>
      name === "dead-letters retry"
        ? jobs.retryDeadLetters(dead)
        : jobs.deleteDeadLetters(dead),
  });
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
  const clip = (cell: string): string =>
    cell.length > 80 ? `${cell.slice(0, 79)}…` : cell.replaceAll("\n", " ");
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

// What requeue, purge, retry and delete ask and say ("#" is the count).
const CHANGES = {
  requeue: [
    "Requeue",
    "",
    "Requeued #; the relay dispatches them at its next pass.",
  ],
  purge: ["Purge", " for good", "Purged #."],
  "dead-letters retry": [
    "Retry",
    " in their original queues",
    "Retried # in their original queues.",
  ],
  "dead-letters delete": ["Delete", " for good", "Deleted #."],
} as const;

async function change(
  io: CliIo,
  values: Values,
  name: Name,
  selection: Selection,
  step: { count(): Promise<number>; act(): Promise<number> },
): Promise<number> {
  const [ask, where, done] = CHANGES[name as keyof typeof CHANGES];
  const noun = COMMANDS[name].db === "outbox" ? "parked event" : "dead letter";
  const said = (changed: number, text: string) =>
    io.out(`${values.json ? JSON.stringify({ changed }) : text}\n`);
  const count = await step.count();
  if (count === 0) {
    said(0, `No ${noun}s match; nothing changed.`);
    return 0;
  }
  const which = "all" in selection
    ? "all"
    : "ids" in selection
    ? plural(selection.ids.length, "id")
    : "type" in selection
    ? `type ${selection.type}`
    : `queue ${selection.queue}`;
  const question = `${ask} ${plural(count, noun)} (${which})${where}?`;
  if (!values.yes && !(await io.confirm(`${question} [y/N] `))) {
    io.err("Aborted; nothing changed.\n");
    return 1;
  }
  const n = await step.act();
  said(n, done.replace("#", plural(n, noun)));
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
      return /^\s*y(es)?\s*$/i.test(await readLine() ?? "");
    },
  };
}

async function readLine(): Promise<string | null> {
  const reader = Deno.stdin.readable.getReader();
  const decoder = new TextDecoder();
  let text = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return text === "" ? null : text;
      text += decoder.decode(value, { stream: true });
      const end = text.indexOf("\n");
      if (end !== -1) return text.slice(0, end);
    }
  } finally {
    reader.releaseLock();
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
