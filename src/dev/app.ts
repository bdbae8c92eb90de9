// Wires the example: databases, schema, Unit of Work, @On handlers, the job
// worker, and the HTTP handler. main.ts serves it; nothing here listens.
import postgres from "postgres";
import { getLogger } from "@logtape/logtape";
import { BatchingJobQueue, defaultBus, type Subscription } from "../../mod.ts";
import {
  migrateOutbox,
  OutboxRelay,
  PostgresUnitOfWork,
  PublishAfterCommitError,
} from "../adapters/postgres/mod.ts";
import {
  type EmbeddedPostgres,
  startEmbeddedPostgres,
} from "../adapters/pglite/mod.ts";
import { PgBossJobQueue } from "../adapters/pg-boss/mod.ts";
import { describeUrl, type DevConfig } from "./config.ts";
import {
  AuditTrail,
  SEND_WELCOME_EMAIL,
  WelcomeEmailPolicy,
} from "./handlers.ts";
import { createHandler, type UserService } from "./http.ts";
import { createSchema } from "./schema.ts";
import { User } from "./user.ts";
import { UserRepository } from "./user_repository.ts";
import { welcomeEmailWorker } from "./welcome_email_worker.ts";

const logger = getLogger(["dev", "app"]);

/** The running example, minus the HTTP listener. */
export interface App extends AsyncDisposable {
  readonly handler: (request: Request) => Promise<Response>;
  /** Where each database is, for the start-up line (no passwords). */
  readonly databases: { readonly app: string; readonly jobs: string };
  /** Stops the worker (running jobs finish), then closes the databases. */
  close(): Promise<void>;
}

/** Opens the databases and wires the example. */
export async function startApp(config: DevConfig): Promise<App> {
  const cleanup: (() => Promise<void>)[] = [];
  const closeAll = async () => {
    for (const fn of cleanup.reverse()) {
      try {
        await fn();
      } catch (e) {
        logger.error("Shutdown step failed: {error}", { error: String(e) });
      }
    }
  };
  try {
    const appDir = `${config.dataDir}/app`;
    const jobsDir = `${config.dataDir}/jobs`;
    if (config.fresh) {
      for (const dir of [appDir, jobsDir]) {
        await Deno.remove(dir, { recursive: true }).catch((e) => {
          if (!(e instanceof Deno.errors.NotFound)) throw e;
        });
      }
    }

    // The application database.
    let sql: ReturnType<typeof postgres>;
    let appWhere: string;
    if (config.databaseUrl === undefined) {
      await Deno.mkdir(appDir, { recursive: true });
      const embedded: EmbeddedPostgres = await startEmbeddedPostgres({
        dataDir: appDir,
      });
      cleanup.push(() => embedded.close());
      sql = embedded.connect(postgres);
      appWhere = `embedded PGlite in ${appDir}`;
    } else {
      sql = postgres(config.databaseUrl, { max: 10, onnotice: () => {} });
      cleanup.push(() => sql.end({ timeout: 5 }));
      appWhere = describeUrl(config.databaseUrl);
    }
    await createSchema(sql);

    // The jobs database.
    let jobsWhere: string;
    let jobs: PgBossJobQueue;
    if (config.jobQueueDatabaseUrl === undefined) {
      await Deno.mkdir(jobsDir, { recursive: true });
      jobs = await PgBossJobQueue.connect(undefined, { dataDir: jobsDir });
      jobsWhere = `embedded PGlite in ${jobsDir}`;
    } else {
      jobs = await PgBossJobQueue.connect(config.jobQueueDatabaseUrl);
      jobsWhere = describeUrl(config.jobQueueDatabaseUrl);
    }
    cleanup.push(() => jobs.stop());
    // Handlers enqueue through the batching wrapper: the jobs of one
    // publishAll are written in one round trip.
    const batching = new BatchingJobQueue(jobs);

    // Handlers on the default bus, as an application would declare them.
    const subscriptions: Subscription[] = [
      defaultBus.subscribe(new WelcomeEmailPolicy(batching)),
      defaultBus.subscribe(new AuditTrail(sql)),
    ];
    cleanup.push(() => {
      for (const s of subscriptions) s.unsubscribe();
      return Promise.resolve();
    });

    await jobs.work(
      SEND_WELCOME_EMAIL,
      welcomeEmailWorker(sql, config.mailerDelayMs),
      { concurrency: 4 },
    );

    // The events of a commit are written to the outbox in the same
    // transaction; the relay redelivers what a crash or a failing handler
    // left undone (at least once; the job key makes a redelivery harmless).
    const publisher = batching.publisher(defaultBus);
    if (config.outbox) {
      await migrateOutbox(sql);
      const relay = new OutboxRelay(sql, { bus: publisher }).start();
      cleanup.push(() => relay.stop());
    }
    const uow = new PostgresUnitOfWork(sql, {
      bus: publisher,
      outbox: config.outbox,
    });
    const users: UserService = {
      register: async (registration) => {
        const user = User.register(registration);
        try {
          await uow.run(async (tx) => {
            await new UserRepository(tx.sql, tx.track).add(user);
          });
        } catch (e) {
          // Saved, and the outbox relay will deliver the events again: the
          // registration succeeded.
          if (e instanceof PublishAfterCommitError && e.relayWillRetry) {
            logger.warning(
              "User {userId} saved; a handler failed, the relay will retry",
              {
                userId: user.id,
              },
            );
            return user;
          }
          throw e;
        }
        return user;
      },
      // A read needs no transaction: one query on the pool.
      find: (id) => new UserRepository(sql).get(id),
      stats: async () => {
        const [row] = await sql`
          select
            (select count(*) from users)::int as users,
            (select count(*) from users where welcome_email_sent_at is not null)::int
              as "welcomeEmailsSent",
            (select count(*) from dev_mailbox)::int as "mailboxMessages",
            (select count(distinct user_id) from dev_mailbox)::int as "mailboxRecipients",
            (select count(*) from audit_trail)::int as "auditRows"`;
        if (!config.outbox) return row as Record<string, number>;
        const [outbox] = await sql`
          select
            count(*) filter (where done_at is null and parked_at is null)::int
              as "outboxPending",
            count(*) filter (where parked_at is not null)::int as "outboxParked"
          from aftercommit_outbox`;
        return { ...row, ...outbox } as Record<string, number>;
      },
      health: async () => ({
        app: await probe(() => sql`select 1`),
        jobs: await probe(() => jobs.ping()),
      }),
    };

    let closed: Promise<void> | undefined;
    const close = () => closed ??= closeAll();
    return {
      handler: createHandler(users),
      databases: { app: appWhere, jobs: jobsWhere },
      close,
      [Symbol.asyncDispose]: close,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

async function probe(fn: () => PromiseLike<unknown>): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const result = await Promise.race([
      Promise.resolve(fn()),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error("timed out")), 2000);
      }),
    ]);
    return result !== false;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
