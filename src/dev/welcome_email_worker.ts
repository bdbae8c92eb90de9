// The worker for send-welcome-email: "sends" to the development mailbox (a
// table) and records the time on the user. Idempotent on the job id, so a
// retried job sends one email.
import { getLogger } from "@logtape/logtape";
import type { Job } from "../../mod.ts";
import type { WelcomeEmailJob } from "./handlers.ts";
import type postgres from "postgres";

const logger = getLogger(["dev", "mailer"]);

/** Makes the job handler. `delayMs` stands for a slow mail provider. */
export function welcomeEmailWorker(
  sql: postgres.Sql,
  delayMs: number,
): (job: Job<WelcomeEmailJob>) => Promise<void> {
  return async (job) => {
    const { userId } = job.data;
    logger.info("Sending welcome email for job {jobId} (attempt {attempt})", {
      jobId: job.id,
      attempt: job.attempt,
    });
    if (delayMs > 0) await sleep(delayMs);
    const sent = await sql.begin(async (tx) => {
      const [user] =
        await tx`select email, name from users where id = ${userId}`;
      if (user === undefined) return false;
      await tx`
        insert into dev_mailbox (job_id, user_id, to_address, subject, body)
        values (${job.id}, ${userId}, ${user.email}, ${"Welcome to aftercommit"},
                ${`Hello ${user.name}, thanks for registering.`})
        on conflict (job_id) do nothing`;
      await tx`
        update users set welcome_email_sent_at = coalesce(welcome_email_sent_at, now())
        where id = ${userId}`;
      return true;
    });
    logger.info(
      sent
        ? "Sent welcome email for job {jobId} (attempt {attempt})"
        : "No user for welcome email job {jobId}: nothing to send",
      { jobId: job.id, attempt: job.attempt },
    );
  };
}

function sleep(ms: number): Promise<void> {
  // Not aborted by job.signal: a graceful stop lets the email finish.
  return new Promise((resolve) => setTimeout(resolve, ms));
}
