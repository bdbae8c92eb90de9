// Wires the example: databases, schema, Unit of Work, @On handlers, the job
// worker, and the HTTP handler. main.ts serves it; nothing here listens.
import postgres from "postgres";
import { getLogger } from "@logtape/logtape";
import { BatchingJobQueue, defaultBus, type Subscription } from "../../mod.ts";
import {
  migrateOutbox,
  OutboxAdmin,
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
  type WelcomeEmailJob,
  WelcomeEmailPolicy,
} from "./handlers.ts";
import { DatabaseHealth } from "./health.ts";
import { ensureServerDatabase } from "./server_database.ts";
import {
  buildTemplate,
  defaultTemplateRoot,
  prepareDataDirs,
} from "./pglite_template.ts";
import { pgBossTemplate } from "./jobs_template.ts";
import { createHandler, type UserService } from "./http.ts";
import { createAdminHandler } from "./admin.ts";
import { dashboard } from "../adapters/dashboard/mod.ts";
import { createSchema } from "./schema.ts";
import { EmailTakenError, User } from "./user.ts";
import { UserRepository } from "./user_repository.ts";
import { welcomeEmailWorker } from "./welcome_email_worker.ts";

// An attempt lost with the jobs database (fetched, or finished, while it
// restarted) stays active until it expires: sending an email takes seconds,
// so it expires after 30 s instead of the default 15 minutes and is retried.
const JOB_QUEUES = { [SEND_WELCOME_EMAIL]: { expireInSeconds: 30 } } as const;

const logger = getLogger(["dev", "app"]);

/** How long after the start the missing jobs template is built. */
const TEMPLATE_BUILD_DELAY_MS = 2_000;

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

    // A new embedded database starts from a copy of a fresh one (one
    // initdb per machine and PGlite version, not one per database).
    const newDirs = [
      ...(config.databaseUrl === undefined ? [appDir] : []),
      ...(config.jobQueueDatabaseUrl === undefined ? [jobsDir] : []),
    ];
    // A new jobs database starts with pg-boss's schema in place once its
    // template exists; the template is built while the server runs.
    const templateRoot = defaultTemplateRoot() ??
      `${config.dataDir}/.template`;
    const jobsKind = config.jobQueueDatabaseUrl === undefined
      ? pgBossTemplate()
      : undefined;
    if (newDirs.length > 0) {
      await prepareDataDirs(
        newDirs,
        templateRoot,
        jobsKind ? { [jobsDir]: jobsKind } : {},
      );
    }

    // Both databases open at once: each embedded one spends seconds
    // compiling and starting PGlite, and the two overlap on two cores.
    const openAppDatabase = async () => {
      if (config.databaseUrl === undefined) {
        await Deno.mkdir(appDir, { recursive: true });
        const embedded: EmbeddedPostgres = await startEmbeddedPostgres({
          dataDir: appDir,
        });
        cleanup.push(() => embedded.close());
        const sql = embedded.connect(postgres);
        return { sql, where: `embedded PGlite in ${appDir}` };
      }
      await ensureServerDatabase(config.databaseUrl, "DATABASE_URL");
      const sql = postgres(config.databaseUrl, { max: 10, onnotice: () => {} });
      cleanup.push(() => sql.end({ timeout: 5 }));
      return { sql, where: describeUrl(config.databaseUrl) };
    };
    const openJobsDatabase = async () => {
      if (config.jobQueueDatabaseUrl === undefined) {
        await Deno.mkdir(jobsDir, { recursive: true });
        const { PGlite } = await import("@electric-sql/pglite");
        const pglite = await PGlite.create(jobsDir);
        // Closed after the queue has stopped: cleanup runs in reverse.
        cleanup.push(() => pglite.close());
        const jobs = await PgBossJobQueue.connect(pglite, {
          queues: JOB_QUEUES,
        });
        return { jobs, where: `embedded PGlite in ${jobsDir}` };
      }
      await ensureServerDatabase(
        config.jobQueueDatabaseUrl,
        "JOB_QUEUE_DATABASE_URL",
      );
      const jobs = await PgBossJobQueue.connect(config.jobQueueDatabaseUrl, {
        queues: JOB_QUEUES,
      });
      return { jobs, where: describeUrl(config.jobQueueDatabaseUrl) };
    };
    const [appOpened, jobsOpened] = await Promise.allSettled([
      openAppDatabase().then(async (opened) => {
        await createSchema(opened.sql);
        if (config.outbox) await migrateOutbox(opened.sql);
        return opened;
      }),
      openJobsDatabase(),
    ]);
    // The jobs queue stops before the application database closes (its
    // worker writes there): cleanup runs in reverse order.
    if (jobsOpened.status === "fulfilled") {
      cleanup.push(() => jobsOpened.value.jobs.stop());
    }
    if (appOpened.status === "rejected") throw appOpened.reason;
    if (jobsOpened.status === "rejected") throw jobsOpened.reason;
    const { sql, where: appWhere } = appOpened.value;
    const { jobs, where: jobsWhere } = jobsOpened.value;
    // Handlers enqueue through the batching wrapper: the jobs of one
    // publishAll are written in one round trip.
    const batching = new BatchingJobQueue(jobs);

    // /health answers from recent real queries, probing only when there
    // were none: a probe would queue behind user work on an embedded
    // database's single connection.
    const appHealth = new DatabaseHealth(() => sql`select 1`);
    const jobsHealth = new DatabaseHealth(() => jobs.ping(2));

    // Handlers on the default bus, as an application would declare them.
    const subscriptions: Subscription[] = [
      defaultBus.subscribe(new WelcomeEmailPolicy(batching)),
      // DEV_FAIL_AUDIT_FILE: test-only failure switch (see AuditTrail).
      defaultBus.subscribe(
        new AuditTrail(sql, Deno.env.get("DEV_FAIL_AUDIT_FILE") || undefined),
      ),
    ];
    cleanup.push(() => {
      for (const s of subscriptions) s.unsubscribe();
      return Promise.resolve();
    });

    const sendWelcomeEmail = welcomeEmailWorker(sql, config.mailerDelayMs);
    await jobs.work<WelcomeEmailJob>(SEND_WELCOME_EMAIL, async (job) => {
      jobsHealth.succeeded(); // the job was fetched from the jobs database
      await sendWelcomeEmail(job);
      appHealth.succeeded();
    }, { concurrency: 4 });

    // The events of a commit are written to the outbox in the same
    // transaction; the relay redelivers what a crash or a failing handler
    // left undone (at least once; the job key makes a redelivery harmless).
    const publisher = batching.publisher(defaultBus);
    const maxAttempts = config.outboxMaxAttempts;
    if (config.outbox) {
      const relay = new OutboxRelay(sql, { bus: publisher, maxAttempts })
        .start();
      cleanup.push(() => relay.stop());
    }
    const uow = new PostgresUnitOfWork(sql, {
      bus: publisher,
      outbox: config.outbox && { maxAttempts },
    });
    // Closed first (cleanup runs in reverse): the marks still being written.
    cleanup.push(() => uow.flush());
    const outboxAdmin = config.outbox ? new OutboxAdmin(sql) : undefined;
    const users: UserService = {
      register: async (registration) => {
        const user = User.register(registration);
        try {
          await uow.run(async (tx) => {
            await new UserRepository(tx.sql, tx.track).add(user);
          });
        } catch (e) {
          if (e instanceof EmailTakenError) appHealth.succeeded();
          // Saved: the registration succeeded, whatever a handler did after
          // the commit (the jobs database down, say). Answer 201 and say
          // what happens to the welcome email.
          if (e instanceof PublishAfterCommitError) {
            appHealth.succeeded();
            const error = errorName(e.cause);
            if (e.relayWillRetry) {
              logger.warning(
                "User {userId} saved; a handler failed ({error}): the welcome email is delayed, the outbox relay retries it",
                { userId: user.id, error },
              );
              return {
                user,
                welcomeEmail:
                  "delayed: a handler failed after the commit; the outbox relay retries it",
              };
            }
            logger.warning(
              "User {userId} saved; a handler failed ({error}): the welcome email is not sent, OUTBOX=false keeps events in memory only",
              { userId: user.id, error },
            );
            return {
              user,
              welcomeEmail:
                "not sent: a handler failed after the commit, and with OUTBOX=false nothing retries it (run with the outbox on)",
            };
          }
          throw e;
        }
        appHealth.succeeded();
        jobsHealth.succeeded(); // the batch of jobs was written
        return { user };
      },
      // A read needs no transaction: one query on the pool.
      find: async (id) => {
        const user = await new UserRepository(sql).get(id);
        appHealth.succeeded();
        return user;
      },
      stats: async () => {
        const [row] = await sql`
          select
            (select count(*) from users)::int as users,
            (select count(*) from users where welcome_email_sent_at is not null)::int
              as "welcomeEmailsSent",
            (select count(*) from dev_mailbox)::int as "mailboxMessages",
            (select count(distinct user_id) from dev_mailbox)::int as "mailboxRecipients",
            (select count(*) from audit_trail)::int as "auditRows"`;
        // Jobs that will still run: waiting, running, or waiting to retry.
        const { queues } = await jobs.stats({ windowSeconds: 1 });
        const jobsWaiting = queues.reduce(
          (n, q) => n + q.created + q.retry + q.active,
          0,
        );
        if (outboxAdmin === undefined) {
          return { ...row, jobsWaiting } as Record<string, number>;
        }
        const outbox = await outboxAdmin.stats();
        return {
          ...row,
          jobsWaiting,
          outboxPending: outbox.pending,
          outboxInFlight: outbox.inFlight,
          outboxParked: outbox.parked,
          outboxDone: outbox.done,
          outboxOldestPendingAgeSeconds: outbox.oldestPendingAgeSeconds ?? 0,
        } as Record<string, number>;
      },
      health: async () => {
        const [app, jobs] = await Promise.all([
          appHealth.check(),
          jobsHealth.check(),
        ]);
        return { app, jobs };
      },
    };

    if (jobsKind) {
      // Off the start's path (and once per machine: it returns at once when
      // the template exists); close() waits for a build under way.
      let building: Promise<void> | undefined;
      const timer = setTimeout(() => {
        building = buildTemplate(templateRoot, jobsKind);
      }, TEMPLATE_BUILD_DELAY_MS);
      cleanup.push(async () => {
        clearTimeout(timer);
        await building;
      });
    }

    let closed: Promise<void> | undefined;
    const close = () => closed ??= closeAll();
    // Admin endpoints (src/dev/admin.ts): off unless ADMIN_TOKEN is set.
    const admin = createAdminHandler({
      token: Deno.env.get("ADMIN_TOKEN"),
      outbox: outboxAdmin,
      jobs,
    });
    // The dashboard at /dashboard: sign-in needed once ADMIN_TOKEN is set.
    if (
      !Deno.env.get("ADMIN_TOKEN") &&
      !/^(127\.\d+\.\d+\.\d+|localhost|::1)$/.test(config.hostname)
    ) {
      logger.warning(
        "The dashboard at /dashboard has no sign-in and the server listens on {hostname}: set ADMIN_TOKEN",
        { hostname: config.hostname },
      );
    }
    const ops = dashboard({
      token: Deno.env.get("ADMIN_TOKEN") || undefined,
      ...(outboxAdmin === undefined ? {} : { outbox: outboxAdmin }),
      jobs,
    });
    return {
      handler: createHandler(users, {
        bodyTimeoutMs: config.bodyTimeoutMs,
        admin: async (request, url) =>
          url.pathname === "/dashboard" ||
            url.pathname.startsWith("/dashboard/")
            ? await ops(request)
            : await admin(request, url),
      }),
      databases: { app: appWhere, jobs: jobsWhere },
      close,
      [Symbol.asyncDispose]: close,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

/** An error's class name, for a log line (its message could hold data). */
function errorName(e: unknown): string {
  return e instanceof Error ? e.name : typeof e;
}
