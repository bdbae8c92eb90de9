// Shared pieces of the outbox deadline, outage and repair tests: an event
// type, a fresh table per test, and undone rows ready for a relay.
import type postgres from "postgres";
import { DomainEvent, EventRegistry } from "../../../mod.ts";
import {
  migrateOutbox,
  type OutboxOptions,
} from "../../../src/adapters/postgres/mod.ts";
import { Outbox } from "../../../src/adapters/postgres/_outbox.ts";
import { waitUntil } from "../../_helpers/poll.ts";

export class Noted extends DomainEvent {
  constructor(readonly n: number, readonly email = "ada@example.org") {
    super();
  }
}

export const registry = new EventRegistry();
registry.register("test.outbox.noted", Noted);

/** Options with a table of its own, migrated. */
export async function freshOutbox(
  sql: postgres.Sql,
  extra: OutboxOptions = {},
): Promise<OutboxOptions & { table: string }> {
  const options = {
    table: `outbox_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`,
    registry,
    retryDelaySeconds: 0.05,
    ...extra,
  };
  await migrateOutbox(sql, options);
  return options;
}

/** Writes `events` as undone rows whose lease is already over. */
export async function insertUndone(
  sql: postgres.Sql,
  options: OutboxOptions,
  events: readonly object[],
): Promise<void> {
  const outbox = new Outbox(options, "test");
  await sql.begin((tx) =>
    outbox.table.insert(tx, outbox.prepare(events).json, -1)
  );
}

export interface Row {
  id: string;
  attempts: number;
  last_error: string | null;
  done: boolean;
  parked: boolean;
}

export async function rows(sql: postgres.Sql, table: string): Promise<Row[]> {
  return [
    ...await sql.unsafe(
      `select id, attempts, last_error, done_at is not null as done,
        parked_at is not null as parked
      from "${table}" order by seq`,
    ),
  ] as unknown as Row[];
}

export async function countWhere(
  sql: postgres.Sql,
  table: string,
  where: string,
): Promise<number> {
  const [row] = await sql.unsafe<{ n: number }[]>(
    `select count(*)::int as n from "${table}" where ${where}`,
  );
  return row!.n;
}

/** Waits until no row of `table` is left undone. */
export async function waitForDrain(
  sql: postgres.Sql,
  table: string,
  what: string,
  ms = 30_000,
): Promise<void> {
  await waitUntil(
    what,
    async () => await countWhere(sql, table, "done_at is null") === 0,
    ms,
  );
}

/** Counts dispatches per event id. */
export class Dispatches {
  readonly counts = new Map<string, number>();
  add(id: string): void {
    this.counts.set(id, (this.counts.get(id) ?? 0) + 1);
  }
  get max(): number {
    return Math.max(0, ...this.counts.values());
  }
  get twice(): number {
    return [...this.counts.values()].filter((n) => n > 1).length;
  }
}
