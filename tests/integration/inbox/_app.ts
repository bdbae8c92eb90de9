// The app of the inbox crash test, shared by the child process (_child.ts)
// and the test that takes over after it is killed: a counter that a handler
// bumps once per event, through Inbox.once, on an outbox-mode unit of work.
import type postgres from "postgres";
import { DomainEvent, EventBus, EventType } from "../../../mod.ts";
import {
  Inbox,
  migrateInbox,
  migrateOutbox,
  type OutboxOptions,
  PostgresUnitOfWork,
} from "../../../src/adapters/postgres/mod.ts";
import { type AppConnection, connectApp } from "../../_helpers/app_db.ts";

@EventType("test.inbox.order-paid")
export class OrderPaid extends DomainEvent {
  constructor(readonly orderId: string) {
    super();
  }
}

/** Outbox settings: a short lease, so the relay takes over soon. */
export const OUTBOX: OutboxOptions = {
  leaseSeconds: 1,
  retryDelaySeconds: 0.1,
};

/** The handler's name in the inbox. */
export const HANDLER = "Ledger.book";

/** Where the application database lives: a data folder or a URL. */
export interface Location {
  readonly backend: "embedded" | "server";
  readonly app: string;
}

/** Opens the database, creating the outbox, the inbox and the ledger. */
export async function openApp(location: Location): Promise<AppConnection> {
  const app = await connectApp(location.backend, location.app, 4);
  await migrateOutbox(app.sql);
  await migrateInbox(app.sql);
  // No unique key: only the inbox keeps a second booking out.
  await app.sql`create table if not exists ledger (
    order_id text not null, event_id text not null)`;
  return app;
}

/**
 * A bus whose OrderPaid handler books the order once per event, in its own
 * unit of work; `effect` runs after the booking, before the commit.
 */
export function ledgerBus(
  sql: postgres.Sql,
  effect: () => Promise<void> = () => Promise.resolve(),
): { bus: EventBus; ran: boolean[] } {
  const bus = new EventBus();
  const inbox = new Inbox();
  const uow = new PostgresUnitOfWork(sql);
  const ran: boolean[] = [];
  bus.register(OrderPaid, async (event) => {
    const result = await uow.run((tx) =>
      inbox.once(tx.sql, event, HANDLER, async () => {
        await tx.sql`insert into ledger (order_id, event_id)
          values (${event.orderId}, ${event.eventId})`;
        await effect();
      })
    );
    ran.push(result.ran);
  });
  return { bus, ran };
}
