// One crash round: a child process registers a user in outbox mode and is
// killed with SIGKILL at a crash point; then this process takes over like a
// restarted app (the relay and the welcome-email worker) until the email has
// been sent, and reports what happened. Shared by crash_test.ts and
// bench/outbox_crash_soak.ts.
import { fromFileUrl } from "../../unit/_paths.ts";
import { killChildWhenReady } from "../../_helpers/kill_child.ts";
import { relayUntil } from "../../_helpers/poll.ts";
import {
  type Locations,
  openApp,
  openJobs,
  OUTBOX,
  WELCOME_QUEUE,
  welcomeBus,
} from "./_app.ts";

const CHILD = fromFileUrl(new URL("./_child.ts", import.meta.url));
const ROOT = fromFileUrl(new URL("../../../", import.meta.url));

/** What one round observed. */
export interface CrashRound {
  readonly userId: string;
  readonly eventId: string;
  /** Welcome emails sent for this user (the job's executions). */
  readonly executions: number;
  /** What the relay's enqueue returned: a job id, or null for a duplicate. */
  readonly enqueued: readonly (string | null)[];
  /** The outbox row after the takeover. */
  readonly row: { done: boolean; attempts: number };
  /** Welcome emails sent for any user so far. */
  readonly totalExecutions: number;
  readonly childMs: number;
  readonly takeoverMs: number;
}

/** Runs the child until it blocks at `stage`, then kills it. */
async function crashChild(
  stage: "committed" | "dispatched",
  locations: Locations,
): Promise<{ userId: string; eventId: string }> {
  const [userId, eventId] = await killChildWhenReady(
    CHILD,
    [stage, locations.backend, locations.app, locations.jobs],
    ROOT,
    stage,
  );
  return { userId: userId!, eventId: eventId! };
}

/** One round: crash the child at `stage`, then take over until the email is sent. */
export async function crashRound(
  stage: "committed" | "dispatched",
  locations: Locations,
): Promise<CrashRound> {
  const started = performance.now();
  const { userId, eventId } = await crashChild(stage, locations);
  const childMs = performance.now() - started;

  await using app = await openApp(locations);
  const { sql } = app;
  const jobs = await openJobs(locations);
  try {
    await jobs.work<{ userId: string }>(WELCOME_QUEUE, async (job) => {
      await sql`insert into welcome_emails (job_id, user_id)
        values (${job.id}, ${job.data.userId})`;
    }, { pollingIntervalSeconds: 0.5 });
    const { bus, welcome } = welcomeBus(() => Promise.resolve(jobs));
    let seen = { sent: 0, done: false };
    await relayUntil(
      sql,
      { ...OUTBOX, bus },
      () => `the email: ${seen.sent} sent, outbox row done: ${seen.done}`,
      async () => {
        const [row] = await sql<{ sent: number; done: boolean }[]>`
          select
            (select count(*)::int from welcome_emails where user_id = ${userId}) as sent,
            (select done_at is not null from aftercommit_outbox where id = ${eventId}) as done`;
        seen = row!;
        return seen.sent >= 1 && seen.done;
      },
    );
    const [counts] = await sql<
      { executions: number; total: number; attempts: number; done: boolean }[]
    >`
      select
        (select count(*)::int from welcome_emails where user_id = ${userId}) as executions,
        (select count(*)::int from welcome_emails) as total,
        o.attempts, o.done_at is not null as done
      from aftercommit_outbox o where o.id = ${eventId}`;
    return {
      userId,
      eventId,
      executions: counts!.executions,
      enqueued: welcome.enqueued,
      row: { done: counts!.done, attempts: counts!.attempts },
      totalExecutions: counts!.total,
      childMs,
      takeoverMs: performance.now() - started - childMs,
    };
  } finally {
    await jobs.stop();
  }
}
