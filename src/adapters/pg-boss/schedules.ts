// Cron schedules: `PgBossJobQueue.schedule()`, `unschedule()`, `schedules()`.
import { getLogger } from "@logtape/logtape";
import type { PgBoss } from "pg-boss";
import { assertQueueName, prepareJob } from "../../application/job_queue.ts";
import { describe } from "../../internal/describe.ts";
import { fail, matches, readOptions } from "../../internal/rules.ts";
import type { QueueAccess } from "./_worker.ts";

const logger = getLogger(["aftercommit", "jobs"]);

/** One schedule, as `PgBossJobQueue.schedules()` lists it. */
export interface JobSchedule {
  /** The queue it sends jobs to. */
  readonly name: string;
  /** Its key; `""` for the queue's unnamed schedule. */
  readonly key: string;
  /** The cron expression or RFC 5545 rule. */
  readonly cron: string;
  /** The time zone it is read in. */
  readonly timeZone: string;
}

/** Options of `PgBossJobQueue.schedule()`. */
export interface ScheduleOptions {
  /** Names one of several schedules of a queue. Default: none. */
  readonly key?: string;
  /** The IANA time zone the cron is read in. Default: "UTC". */
  readonly timeZone?: string;
}

const SCHEDULE = {
  // pg-boss's rule for schedule keys is its rule for queue names.
  key: matches(
    /^[A-Za-z0-9_.\-/]*$/, // "" is the queue's unnamed schedule
    'a name of letters, digits, "_", "-", "." and "/", such as "eu"',
  ),
  timeZone: matches(/\S/, 'an IANA time zone name such as "Europe/Paris"'),
};

/** The schedule operations of one pg-boss instance (see `PgBossJobQueue`). */
export class Schedules {
  constructor(
    private readonly boss: PgBoss,
    private readonly queue: QueueAccess,
  ) {}

  async schedule(
    name: string,
    cron: string,
    data: unknown,
    options: ScheduleOptions,
  ): Promise<void> {
    const { key, timeZone = "UTC", action } = read(name, options, "schedule");
    prepareJob({ name, data }, "schedule jobs");
    if (typeof cron !== "string" || cron.trim() === "") {
      fail(
        action,
        `expected a cron expression, received ${
          cron === "" ? "an empty string" : describe(cron)
        }; pass five fields such as "0 3 * * *" (every day at 03:00)`,
      );
    }
    let next: unknown[];
    try {
      // pg-boss's own check, in process: schedule() rejects the same.
      next = this.boss.previewSchedule(cron, { tz: timeZone, count: 1 });
    } catch (cause) {
      const message = cause instanceof Error ? cause.message : String(cause);
      throw new TypeError(
        /time ?zone|tz/i.test(message)
          ? `Cannot ${action}: pg-boss rejects the time zone ${
            JSON.stringify(timeZone)
          } (${message}); pass an IANA name such as "Europe/Paris", or leave it out for UTC`
          : `Cannot ${action}: pg-boss rejects the cron expression ${
            JSON.stringify(cron)
          } (${message}); pass five fields (minute hour day month weekday) such as "0 3 * * *", or an RFC 5545 rule such as "FREQ=DAILY;BYHOUR=3"`,
        { cause },
      );
    }
    if (next.length === 0) { // so does schedule(), after the queue is made
      fail(
        action,
        `the rule ${
          JSON.stringify(cron)
        } has no occurrence left, so the schedule would never send a job; pass a rule whose next occurrence is still to come`,
      );
    }
    this.queue.assertRunning(action);
    await this.queue.ensureQueue(name);
    await this.boss.schedule(name, cron, data as object | null, {
      tz: timeZone,
      ...(key === undefined ? {} : { key }),
    });
    const fields = { jobName: name, cron, timeZone, key };
    logger.info("Scheduled queue {jobName} on {cron} ({timeZone})", fields);
  }

  async unschedule(name: string, options: ScheduleOptions): Promise<void> {
    const { key, action } = read(name, options, "unschedule");
    this.queue.assertRunning(action);
    await this.boss.unschedule(name, key ?? "");
    logger.info("Unscheduled queue {jobName}", { jobName: name, key });
  }

  async list(name: string | undefined): Promise<JobSchedule[]> {
    if (name !== undefined) assertQueueName(name, "list schedules");
    this.queue.assertRunning("list schedules");
    return (await this.boss.getSchedules(name)).map((s) => ({
      name: s.name,
      key: s.key ?? "",
      cron: s.cron,
      timeZone: s.timezone ?? "UTC",
    }));
  }
}

// Checks the queue name, then the options, for `${verb} jobs`.
function read(name: string, options: unknown, verb: string) {
  assertQueueName(name, `${verb} jobs`);
  const action = `${verb} jobs on queue "${name}"`;
  return { ...readOptions(options, SCHEDULE, action), action };
}
