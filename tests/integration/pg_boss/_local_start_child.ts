// A process whose job starts at its insert (the queue has a worker here)
// and whose handler never returns: it prints "ready <jobId> <startedFirst>"
// (whether the handler started before enqueue() resolved) and blocks its
// thread, so that no timer of its own can fail the job, until the test
// SIGKILLs it.
//
// Usage: _local_start_child.ts <postgres URL | PGlite data dir> <queue>
import { connectJobQueue } from "../../_helpers/jobs_db.ts";

const [where, queue] = Deno.args;
if (where === undefined || queue === undefined) {
  throw new TypeError("usage: _local_start_child.ts <url | data dir> <queue>");
}
const jobs = await connectJobQueue(
  where.startsWith("postgres") ? where : { dataDir: where },
  {
    supervise: false,
    queueDefaults: {
      expireInSeconds: 1,
      retryLimit: 3,
      retryDelaySeconds: 0,
      retryBackoff: false,
    },
  },
);
let enqueued = false;
let startedFirst = false;
await jobs.work(queue, () => {
  startedFirst = !enqueued;
  return new Promise<void>(() => {});
});
const id = await jobs.enqueue(queue, { n: 1 });
enqueued = true;
Deno.stdout.writeSync(
  new TextEncoder().encode(`ready ${id} ${startedFirst}\n`),
);
Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
