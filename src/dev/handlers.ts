// The example's event handlers, declared with @On. They do no slow work
// inline: the welcome email is a job; the audit row is a short follow-on
// transaction.
import { type JobQueue, On } from "../../mod.ts";
import { UserRegistered } from "./user.ts";
import type { Sql } from "./schema.ts";

export const SEND_WELCOME_EMAIL = "send-welcome-email";

/** The data of a send-welcome-email job: ids only, no personal data. */
export interface WelcomeEmailJob {
  userId: string;
}

/** Enqueues the welcome email, once per event even when redelivered. */
export class WelcomeEmailPolicy {
  constructor(private readonly jobs: JobQueue) {}

  @On(UserRegistered)
  async enqueueWelcomeEmail(event: UserRegistered): Promise<void> {
    const job: WelcomeEmailJob = { userId: event.userId };
    await this.jobs.enqueue(SEND_WELCOME_EMAIL, job, {
      key: `${event.eventId}:WelcomeEmailPolicy.enqueueWelcomeEmail`,
    });
  }
}

/**
 * Keeps one audit row per event (idempotent on the event id).
 *
 * Test-only switch, for the dashboard's browser test: with
 * `failWhileFile` (DEV_FAIL_AUDIT_FILE) set, while that file exists, the
 * handler fails for users whose email matches the regular expression the
 * file holds, so their events get parked; deleting the file "fixes the
 * bug". Never set it in a real deployment.
 */
export class AuditTrail {
  constructor(
    private readonly sql: Sql,
    private readonly failWhileFile?: string,
  ) {}

  @On(UserRegistered)
  async record(event: UserRegistered): Promise<void> {
    if (this.failWhileFile !== undefined) await this.#failForTest(event);
    await this.sql`
      insert into audit_trail (event_id, event_type, user_id, occurred_at)
      values (${event.eventId}, ${"UserRegistered"}, ${event.userId}, ${event.occurredAt})
      on conflict (event_id) do nothing`;
  }

  async #failForTest(event: UserRegistered): Promise<void> {
    let pattern: string;
    try {
      pattern = (await Deno.readTextFile(this.failWhileFile!)).trim();
    } catch {
      return; // no file: the "bug" is fixed
    }
    const [row] = await this.sql<{ email: string }[]>`
      select email from users where id = ${event.userId}`;
    if (row !== undefined && new RegExp(pattern).test(row.email)) {
      throw new Error(
        "Audit store refused the event (test switch DEV_FAIL_AUDIT_FILE)",
      );
    }
  }
}
