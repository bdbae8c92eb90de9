/**
 * The `aftercommit` command line: see and repair the transactional outbox
 * (counts, parked events, requeue, purge) and pg-boss dead letters (list,
 * retry into the original queue, delete). Commands that change rows say
 * how many and ask for confirmation unless `--yes` is given; bad arguments
 * get a clear error and change nothing.
 *
 * ```sh
 * deno run -A jsr:@aftercommit/core/cli stats
 * deno run -A jsr:@aftercommit/core/cli parked --type user.registered
 * deno run -A jsr:@aftercommit/core/cli requeue --type user.registered
 * deno run -A jsr:@aftercommit/core/cli dead-letters retry --queue send-welcome-email --yes
 * ```
 *
 * The application database comes from `--database-url` or `DATABASE_URL`,
 * the jobs database from `--jobs-url` or `JOB_QUEUE_DATABASE_URL`.
 *
 * @example Run a command from code
 * ```ts ignore
 * import { main } from "@aftercommit/core/cli";
 *
 * const code = await main(["stats", "--json"]);
 * console.log(code); // 0
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

/** Where the CLI writes and how it asks. */
export interface CliIo {
  /**
   * Writes to standard output.
   *
   * @param text What to write (a line ends with "\n").
   */
  out(text: string): void;
  /**
   * Writes to standard error.
   *
   * @param text What to write (a line ends with "\n").
   */
  err(text: string): void;
  /**
   * Asks a yes/no question; answers `false` unless the user says yes.
   *
   * @param question The question.
   * @returns Whether the user said yes.
   */
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
  /**
   * Opens the outbox of the application database.
   *
   * @param table The outbox table (`--table`), if given.
   * @returns The admin and a function that closes it.
   */
  openOutbox?(
    table: string | undefined,
  ): Promise<{ admin: OutboxAdminLike; close(): Promise<void> }>;
  /**
   * Opens the jobs database.
   *
   * @param schema The pg-boss schema (`--schema`), if given.
   * @returns The dead-letter operations and a function that closes them.
   */
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

class UsageError extends Error {}

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

type Values = ReturnType<typeof parse>["values"];

function parse(args: string[]) {
  return parseArgs({
    args,
    options: OPTIONS,
    allowPositionals: true,
    strict: true,
  });
}

/**
 * Runs one CLI command.
 *
 * @param args The arguments, as in `Deno.args`.
 * @param io Where to write and how to ask; the terminal by default.
 * @param dependencies How to open the databases; from the URLs by default.
 * @returns The exit code: 0 done, 1 declined or failed, 2 bad arguments.
 */
export async function main(
  args: readonly string[],
  io: CliIo = terminal(),
  dependencies: CliDependencies = {},
): Promise<number> {
  let command: Command;
  try {
    command = parseCommand([...args]);
  } catch (error) {
    if (error instanceof UsageError || error instanceof TypeError) {
      io.err(`aftercommit: ${error.message}\n\nRun with --help for usage.\n`);
      return 2;
    }
    throw error;
  }
  if (command.kind === "help") {
    io.out(USAGE);
    return 0;
  }
  try {
    if (command.kind === "outbox") {
      const open = dependencies.openOutbox ??
        ((table) => openOutboxFromUrl(command.values, table));
      const { admin, close } = await open(command.values.table);
      try {
        return await runOutbox(command, admin, io);
      } finally {
        await close();
      }
    }
    const open = dependencies.openJobs ??
      ((schema) => openJobsFromUrl(command.values, schema));
    const { jobs, close } = await open(command.values.schema);
    try {
      return await runDeadLetters(command, jobs, io);
    } finally {
      await close();
    }
  } catch (error) {
    // The API's own argument checks (a queue name, say) are usage errors.
    if (
      error instanceof UsageError || error instanceof TypeError ||
      error instanceof RangeError
    ) {
      io.err(`aftercommit: ${error.message}\n`);
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

type Command =
  | { kind: "help" }
  | {
    kind: "outbox";
    action: "stats" | "parked" | "requeue" | "purge";
    values: Values;
    selection?: ParkedSelection;
    limit: number;
  }
  | {
    kind: "dead-letters";
    action: "list" | "retry" | "delete";
    values: Values;
    selection?: DeadLetterSelection;
    limit: number;
  };

// Every argument is checked here, before anything is opened.
function parseCommand(args: string[]): Command {
  let parsed;
  try {
    parsed = parse(args);
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : `${error}`);
  }
  const { values, positionals } = parsed;
  if (values.help || positionals.length === 0) return { kind: "help" };
  const [name, sub, ...extra] = positionals;
  const limit = parseLimit(values.limit);
  const forbid = (flags: (keyof Values)[], where: string): void => {
    for (const flag of flags) {
      if (values[flag] !== undefined) {
        throw new UsageError(`--${flag} does not apply to ${where}`);
      }
    }
  };
  switch (name) {
    case "stats":
    case "parked":
    case "requeue":
    case "purge": {
      if (sub !== undefined) {
        throw new UsageError(
          `unexpected argument ${JSON.stringify(sub)} after ${name}`,
        );
      }
      forbid(["queue", "data", "jobs-url", "schema"], name);
      if (name === "stats") {
        forbid(["type", "id", "all", "limit", "payload", "yes"], name);
        return { kind: "outbox", action: name, values, limit };
      }
      if (name === "parked") {
        forbid(["id", "all", "yes"], name);
        return { kind: "outbox", action: name, values, limit };
      }
      forbid(["limit", "payload"], name);
      const selection = select(values, "type", name) as ParkedSelection;
      return { kind: "outbox", action: name, values, selection, limit };
    }
    case "dead-letters": {
      const action = sub ?? "list";
      if (action !== "list" && action !== "retry" && action !== "delete") {
        throw new UsageError(
          `unknown dead-letters command ${
            JSON.stringify(action)
          }; use list, retry or delete`,
        );
      }
      if (extra.length > 0) {
        throw new UsageError(
          `unexpected argument ${JSON.stringify(extra[0])} after ${action}`,
        );
      }
      forbid(["type", "payload", "database-url", "table"], "dead-letters");
      if (action === "list") {
        forbid(["id", "all", "yes"], "dead-letters list");
        return { kind: "dead-letters", action, values, limit };
      }
      forbid(["limit", "data"], `dead-letters ${action}`);
      const selection = select(
        values,
        "queue",
        `dead-letters ${action}`,
      ) as DeadLetterSelection;
      return { kind: "dead-letters", action, values, selection, limit };
    }
    default:
      throw new UsageError(
        `unknown command ${
          JSON.stringify(name)
        }; use stats, parked, requeue, purge or dead-letters`,
      );
  }
}

function select(
  values: Values,
  by: "type" | "queue",
  command: string,
): ParkedSelection | DeadLetterSelection {
  const given = [
    values.id !== undefined,
    values[by] !== undefined,
    values.all === true,
  ].filter(Boolean).length;
  if (given !== 1) {
    throw new UsageError(
      `${command} needs exactly one of --id (repeatable), --${by} or --all`,
    );
  }
  if (values.id !== undefined) {
    if (values.id.some((id) => id.trim() === "")) {
      throw new UsageError("--id must not be empty");
    }
    return { ids: values.id };
  }
  if (values.all) return { all: true };
  const value = values[by]!;
  if (value.trim() === "") throw new UsageError(`--${by} must not be empty`);
  return by === "type" ? { type: value } : { queue: value };
}

function parseLimit(text: string | undefined): number {
  if (text === undefined) return 100;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 10_000) {
    throw new UsageError(
      `--limit must be an integer from 1 to 10000, received ${
        JSON.stringify(text)
      }`,
    );
  }
  return n;
}

function url(
  given: string | undefined,
  variable: string,
  flag: string,
): string {
  const value = given ?? Deno.env.get(variable);
  if (value === undefined || value === "") {
    throw new UsageError(
      `no database: pass --${flag} or set ${variable} (an embedded PGlite database can be opened by one process only; use the dev server's admin endpoints for it)`,
    );
  }
  if (!/^postgres(ql)?:\/\//.test(value)) {
    throw new UsageError(
      `${
        given === undefined ? variable : `--${flag}`
      } must be a postgres:// URL`,
    );
  }
  return value;
}

async function openOutboxFromUrl(
  values: Values,
  table: string | undefined,
): Promise<{ admin: OutboxAdminLike; close(): Promise<void> }> {
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

async function openJobsFromUrl(
  values: Values,
  schema: string | undefined,
): Promise<{ jobs: DeadLetterAdminLike; close(): Promise<void> }> {
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

async function runOutbox(
  command: Extract<Command, { kind: "outbox" }>,
  admin: OutboxAdminLike,
  io: CliIo,
): Promise<number> {
  const { values } = command;
  if (command.action === "stats") {
    const stats = await admin.stats();
    if (values.json) {
      io.out(`${JSON.stringify(stats)}\n`);
    } else {
      io.out(
        table(
          ["pending", "in flight", "parked", "done", "oldest pending"],
          [[
            String(stats.pending),
            String(stats.inFlight),
            String(stats.parked),
            String(stats.done),
            stats.oldestPendingAgeSeconds === null
              ? "-"
              : age(stats.oldestPendingAgeSeconds),
          ]],
        ),
      );
    }
    return 0;
  }
  if (command.action === "parked") {
    const events = await admin.listParked({
      ...(values.type === undefined ? {} : { type: values.type }),
      limit: command.limit,
      includePayload: values.payload === true,
    });
    if (values.json) {
      io.out(`${JSON.stringify(events)}\n`);
    } else if (events.length === 0) {
      io.out("No parked events.\n");
    } else {
      io.out(table(
        [
          "id",
          "type",
          "attempts",
          "age",
          "last error",
          ...(values.payload ? ["payload"] : []),
        ],
        events.map((e) => [
          e.id,
          e.type,
          String(e.attempts),
          age(e.ageSeconds),
          e.lastError ?? "",
          ...(values.payload ? [JSON.stringify(e.payload)] : []),
        ]),
      ));
    }
    return 0;
  }
  const selection = command.selection!;
  const verb = command.action === "requeue" ? "Requeue" : "Purge";
  const count = await admin.countParked(selection);
  return await change(io, values, count, {
    question: `${verb} ${plural(count, "parked event")} (${
      describeSelection(selection)
    })${command.action === "purge" ? " for good" : ""}?`,
    act: () =>
      command.action === "requeue"
        ? admin.requeueParked(selection)
        : admin.purgeParked(selection),
    done: (n) =>
      command.action === "requeue"
        ? `Requeued ${
          plural(n, "parked event")
        }; the relay dispatches them at its next pass.`
        : `Purged ${plural(n, "parked event")}.`,
    none: "No parked events match; nothing changed.",
  });
}

async function runDeadLetters(
  command: Extract<Command, { kind: "dead-letters" }>,
  jobs: DeadLetterAdminLike,
  io: CliIo,
): Promise<number> {
  const { values } = command;
  if (command.action === "list") {
    const letters = await jobs.deadLetters({
      ...(values.queue === undefined ? {} : { queue: values.queue }),
      limit: command.limit,
      includeData: values.data === true,
    });
    if (values.json) {
      io.out(`${JSON.stringify(letters)}\n`);
    } else if (letters.length === 0) {
      io.out("No dead letters.\n");
    } else {
      io.out(table(
        [
          "id",
          "queue",
          "attempts",
          "age",
          "error",
          ...(values.data ? ["data"] : []),
        ],
        letters.map((l) => [
          l.id,
          l.queue,
          l.attempts === null ? "-" : String(l.attempts),
          age(l.ageSeconds),
          l.error ?? "",
          ...(values.data ? [JSON.stringify(l.data)] : []),
        ]),
      ));
    }
    return 0;
  }
  const selection = command.selection!;
  const count = await jobs.countDeadLetters(selection);
  const retry = command.action === "retry";
  return await change(io, values, count, {
    question: `${retry ? "Retry" : "Delete"} ${plural(count, "dead letter")} (${
      describeSelection(selection)
    })${retry ? " in their original queues" : " for good"}?`,
    act: () =>
      retry
        ? jobs.retryDeadLetters(selection)
        : jobs.deleteDeadLetters(selection),
    done: (n) =>
      retry
        ? `Retried ${plural(n, "dead letter")} in their original queues.`
        : `Deleted ${plural(n, "dead letter")}.`,
    none: "No dead letters match; nothing changed.",
  });
}

async function change(
  io: CliIo,
  values: Values,
  count: number,
  step: {
    question: string;
    act: () => Promise<number>;
    done: (n: number) => string;
    none: string;
  },
): Promise<number> {
  if (count === 0) {
    io.out(
      values.json ? `${JSON.stringify({ changed: 0 })}\n` : `${step.none}\n`,
    );
    return 0;
  }
  if (!values.yes && !(await io.confirm(`${step.question} [y/N] `))) {
    io.err("Aborted; nothing changed.\n");
    return 1;
  }
  const n = await step.act();
  io.out(
    values.json ? `${JSON.stringify({ changed: n })}\n` : `${step.done(n)}\n`,
  );
  return 0;
}

function describeSelection(
  selection: ParkedSelection | DeadLetterSelection,
): string {
  if ("all" in selection) return "all";
  if ("ids" in selection) return plural(selection.ids.length, "id");
  if ("type" in selection) return `type ${selection.type}`;
  return `queue ${selection.queue}`;
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

function table(head: string[], rows: string[][]): string {
  const clip = (cell: string): string =>
    cell.length > 80 ? `${cell.slice(0, 79)}…` : cell.replaceAll("\n", " ");
  const cells = [head, ...rows.map((r) => r.map(clip))];
  const widths = head.map((_, i) =>
    Math.max(...cells.map((row) => row[i]!.length))
  );
  return cells
    .map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd())
    .join("\n") + "\n";
}

/**
 * The terminal: standard output and error, and a prompt that reads one
 * line from standard input (no line, or anything but y/yes, is a no).
 *
 * @returns The terminal's {@linkcode CliIo}.
 */
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
      const line = await readLine();
      return /^\s*y(es)?\s*$/i.test(line ?? "");
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
