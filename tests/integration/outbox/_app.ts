// The "user registration" of the outbox crash tests, shared by the child
// process (_child.ts) and the tests that take over after it is killed.
import {
  AggregateRoot,
  DomainEvent,
  EventBus,
  EventType,
  type JobQueue,
  On,
} from "../../../mod.ts";
import {
  migrateOutbox,
  type OutboxOptions,
} from "../../../src/adapters/postgres/mod.ts";
import type { PgBossJobQueue } from "../../../src/adapters/pg-boss/mod.ts";
import { type AppConnection, connectApp } from "../../_helpers/app_db.ts";
import { connectJobQueue } from "../../_helpers/jobs_db.ts";
import { createServerDatabase } from "../../_helpers/server_database.ts";

export const WELCOME_QUEUE = "send-welcome-email";

@EventType("test.crash.user-registered")
export class UserRegistered extends DomainEvent {
  constructor(readonly userId: string, readonly email: string) {
    super();
  }
}

export class User extends AggregateRoot {
  private constructor(readonly id: string, readonly email: string) {
    super();
  }

  static register(email: string): User {
    const user = new User(crypto.randomUUID(), email);
    user.recordEvent(new UserRegistered(user.id, email));
    return user;
  }
}

/** The handler: enqueues the welcome email, keyed by event id and handler. */
export class Welcome {
  /** What each enqueue returned: a job id, or null for a duplicate key. */
  readonly enqueued: (string | null)[] = [];

  constructor(private readonly jobs: () => Promise<JobQueue>) {}

  @On(UserRegistered)
  async enqueue(event: UserRegistered): Promise<void> {
    const jobs = await this.jobs();
    this.enqueued.push(
      await jobs.enqueue(WELCOME_QUEUE, { userId: event.userId }, {
        key: `${event.eventId}:Welcome.enqueue`,
      }),
    );
  }
}

/** Outbox settings of the crash tests: a short lease, fast retries. */
export const OUTBOX: OutboxOptions = {
  leaseSeconds: 1,
  retryDelaySeconds: 0.1,
};

/** Where the two databases live: data folders (embedded) or URLs (server). */
export interface Locations {
  readonly backend: "embedded" | "server";
  readonly app: string;
  readonly jobs: string;
}

/** Opens the application database, creating its tables when missing. */
export async function openApp(locations: Locations): Promise<AppConnection> {
  const connection = await connectApp(locations.backend, locations.app, 5);
  const { sql } = connection;
  await migrateOutbox(sql);
  await sql`create table if not exists users (
    id text primary key, email text not null)`;
  await sql`create table if not exists welcome_emails (
    job_id text not null, user_id text not null)`;
  return connection;
}

/** Connects the job queue of the jobs database. */
export function openJobs(locations: Locations): Promise<PgBossJobQueue> {
  return connectJobQueue(
    locations.backend === "server"
      ? locations.jobs
      : { dataDir: locations.jobs },
    { supervise: false, stopTimeoutSeconds: 5 },
  );
}

/** A bus with the Welcome handler subscribed. */
export function welcomeBus(
  jobs: () => Promise<JobQueue>,
): { bus: EventBus; welcome: Welcome } {
  const bus = new EventBus();
  const welcome = new Welcome(jobs);
  bus.subscribe(welcome);
  return { bus, welcome };
}

/**
 * Creates the two databases of one test file: temporary data folders
 * (embedded), or fresh databases on the servers of TEST_DATABASE_URL and
 * TEST_JOB_QUEUE_DATABASE_URL, dropped at the end.
 */
export async function createLocations(): Promise<
  Locations & AsyncDisposable
> {
  const appUrl = Deno.env.get("TEST_DATABASE_URL") ?? "";
  const jobsUrl = Deno.env.get("TEST_JOB_QUEUE_DATABASE_URL") ?? "";
  if (appUrl === "") {
    const app = await Deno.makeTempDir({ prefix: "aftercommit_outbox_app_" });
    const jobs = await Deno.makeTempDir({
      prefix: "aftercommit_outbox_jobs_",
    });
    return {
      backend: "embedded",
      app,
      jobs,
      async [Symbol.asyncDispose]() {
        await Deno.remove(app, { recursive: true });
        await Deno.remove(jobs, { recursive: true });
      },
    };
  }
  const app = await createServerDatabase(appUrl, "aftercommit_outbox_app");
  const jobs = await createServerDatabase(
    jobsUrl || appUrl,
    "aftercommit_outbox_jobs",
  );
  return {
    backend: "server",
    app: app.url,
    jobs: jobs.url,
    async [Symbol.asyncDispose]() {
      await app.drop();
      await jobs.drop();
    },
  };
}
