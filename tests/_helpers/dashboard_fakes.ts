// Stand-ins for the dashboard's sources (an OutboxAdmin and a
// PgBossJobQueue), with one parked event and one dead letter whose fields
// hold an email address.
import type {
  DashboardJobs,
  DashboardOutbox,
} from "../../src/adapters/dashboard/mod.ts";
import type {
  OutboxStats,
  ParkedEvent,
  ParkedSelection,
} from "../../src/adapters/postgres/mod.ts";
import type {
  DeadLetter,
  DeadLetterSelection,
  JobQueueStats,
} from "../../src/adapters/pg-boss/mod.ts";

/** The email address in the stand-ins' fields. */
export const EMAIL = "ada@example.org";

/** An outbox with one parked event. */
export class FakeOutbox implements DashboardOutbox {
  done = 0;
  parked: ParkedEvent[] = [{
    id: "e1",
    type: "user.registered",
    attempts: 10,
    lastError: "Error: audit store down",
    createdAt: new Date(0),
    parkedAt: new Date(0),
    ageSeconds: 42.4,
    payload: { email: EMAIL },
  }];
  requeued: ParkedSelection[] = [];
  fail = false;
  stats(): Promise<OutboxStats> {
    if (this.fail) return Promise.reject(new Error(`row ${EMAIL}`));
    return Promise.resolve({
      pending: 1,
      inFlight: 2,
      parked: this.parked.length,
      done: this.done,
      oldestPendingAgeSeconds: 3,
    });
  }
  listParked(
    options: { includePayload?: boolean } = {},
  ): Promise<ParkedEvent[]> {
    return Promise.resolve(
      this.parked.map(({ payload, ...rest }) =>
        options.includePayload ? { ...rest, payload } : rest
      ),
    );
  }
  countParked(selection: ParkedSelection): Promise<number> {
    if ("type" in selection && selection.type === "") {
      return Promise.reject(new TypeError("Cannot count: bad type"));
    }
    return Promise.resolve(this.parked.length);
  }
  requeueParked(selection: ParkedSelection): Promise<number> {
    this.requeued.push(selection);
    const n = this.parked.length;
    this.parked = [];
    return Promise.resolve(n);
  }
}

/** A job queue with one dead letter. */
export class FakeJobs implements DashboardJobs {
  retried: DeadLetterSelection[] = [];
  letters: DeadLetter[] = [{
    id: "j1",
    queue: "send-welcome-email",
    deadLetterQueue: "send-welcome-email__dead",
    originalId: "o1",
    attempts: 6,
    error: "Error: smtp refused",
    deadLetteredAt: new Date(0),
    ageSeconds: 100,
    data: { email: EMAIL },
  }];
  stats(): Promise<JobQueueStats> {
    return Promise.resolve({
      queues: [{
        name: "send-welcome-email",
        created: 1,
        retry: 0,
        active: 1,
        failed: 1,
        deadLetters: this.letters.length,
      }],
      window: {
        seconds: 2,
        completed: 8,
        measured: 8,
        startLatencyP50Ms: 3,
        startLatencyP99Ms: 9,
      },
    });
  }
  deadLetters(options: { includeData?: boolean } = {}): Promise<DeadLetter[]> {
    return Promise.resolve(
      this.letters.map(({ data, ...rest }) =>
        options.includeData ? { ...rest, data } : rest
      ),
    );
  }
  countDeadLetters(): Promise<number> {
    return Promise.resolve(this.letters.length);
  }
  retryDeadLetters(selection: DeadLetterSelection): Promise<number> {
    this.retried.push(selection);
    const n = this.letters.length;
    this.letters = [];
    return Promise.resolve(n);
  }
}
