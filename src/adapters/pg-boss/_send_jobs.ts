// The pg-boss adapter's write path: one INSERT per queue, in a producer span
// when tracing is on; jobs may start at their insert (_local_start.ts).
import type { JobInsert, PgBoss } from "pg-boss";
import type { PreparedJob } from "../../application/job_queue.ts";
import { inSpan, SpanKind, tracing } from "../../internal/telemetry.ts";
import { type QueueAccess, stamped } from "./_worker.ts";

/**
 * Inserts prepared jobs and wakes the workers of the queues that got jobs
 * ready now, or hands them to a free worker of this process.
 *
 * @returns The ids in order; `null` for a used id.
 */
export function sendJobs(
  boss: PgBoss,
  queue: QueueAccess,
  jobs: readonly PreparedJob[],
): Promise<(string | null)[]> {
  if (!tracing()) return insert(boss, queue, jobs);
  const name = jobs.every((j) => j.name === jobs[0]!.name)
    ? jobs[0]!.name
    : undefined;
  return inSpan(name === undefined ? "enqueue" : `enqueue ${name}`, {
    kind: SpanKind.PRODUCER,
    attributes: {
      "messaging.system": "pg-boss",
      "messaging.operation.type": "send",
      "messaging.operation.name": "enqueue",
      ...(name === undefined ? {} : { "messaging.destination.name": name }),
      "messaging.batch.message_count": jobs.length,
    },
  }, async (span) => {
    const ids = await insert(boss, queue, jobs);
    if (ids.length === 1) {
      if (ids[0] !== null) span.setAttribute("messaging.message.id", ids[0]!);
      span.setAttribute("aftercommit.job.duplicate", ids[0] === null);
    }
    return ids;
  });
}

async function insert(
  boss: PgBoss,
  queue: QueueAccess,
  jobs: readonly PreparedJob[],
): Promise<(string | null)[]> {
  const byQueue = new Map<string, { inserts: JobInsert[]; delayed: number }>();
  const seen = new Set<string>();
  const stamp = stamped();
  for (const { name, data, id, startAfter, options } of jobs) {
    // The same id twice in one INSERT is an error in pg-boss: a duplicate.
    if (seen.has(id)) continue;
    seen.add(id);
    let batch = byQueue.get(name);
    if (batch === undefined) {
      batch = { inserts: [], delayed: 0 };
      byQueue.set(name, batch);
    }
    const insert: JobInsert = { id, data: stamp(data) };
    if (options.priority !== undefined) insert.priority = options.priority;
    if (startAfter !== undefined) {
      insert.startAfter = startAfter;
      batch.delayed++;
    }
    batch.inserts.push(insert);
  }
  const used = new Set<string>(); // Ids pg-boss did not insert.
  await Promise.all(
    [...byQueue].map(async ([name, { inserts, delayed }]) => {
      await queue.ensureQueue(name);
      const started = delayed > 0
        ? undefined
        : await queue.insertStarted(name, inserts);
      const ids = started ??
        await boss.insert(name, inserts, { returnId: true }) ?? [];
      if (ids.length < inserts.length) {
        const created = new Set(ids);
        for (const { id } of inserts) if (!created.has(id!)) used.add(id!);
      }
      if (ids.length > 0 && delayed < inserts.length && started === undefined) {
        queue.wake(name);
      }
    }),
  );
  // `seen.delete`: a repeat of an id in the call is a duplicate too.
  return jobs.map(({ id }) => seen.delete(id) && !used.has(id) ? id : null);
}
