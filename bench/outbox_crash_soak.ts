// deno-lint-ignore-file no-console -- a script that reports its figures
// Soak of the outbox's crash proof on a real PostgreSQL server: 100 times,
// a child process commits a user registration in outbox mode and is killed
// with SIGKILL after COMMIT and before dispatch; then this process takes
// over (the relay and the welcome-email worker) and checks that the email
// job ran exactly once.
//
//   deno run --allow-all --frozen bench/outbox_crash_soak.ts [rounds]
//
// The databases are fresh ones on TEST_DATABASE_URL and
// TEST_JOB_QUEUE_DATABASE_URL (default: the local server), dropped at the end.
import { createLocations } from "../tests/integration/outbox/_app.ts";
import { crashRound } from "../tests/integration/outbox/_crash.ts";

const LOCAL = "postgres://postgres@127.0.0.1:5432/postgres";
for (const name of ["TEST_DATABASE_URL", "TEST_JOB_QUEUE_DATABASE_URL"]) {
  if (!Deno.env.get(name)) Deno.env.set(name, LOCAL);
}
const rounds = Number(Deno.args[0] ?? 100);
if (!Number.isInteger(rounds) || rounds < 1) {
  throw new TypeError(
    `rounds must be a positive integer, received ${Deno.args[0]}`,
  );
}

await using locations = await createLocations();
const started = performance.now();
const failures: string[] = [];
const child: number[] = [];
const takeover: number[] = [];
for (let i = 1; i <= rounds; i++) {
  const round = await crashRound("committed", locations);
  child.push(round.childMs);
  takeover.push(round.takeoverMs);
  if (round.executions !== 1 || round.totalExecutions !== i) {
    failures.push(
      `round ${i}: ${round.executions} emails for the user, ${round.totalExecutions} in all`,
    );
  }
  if (i % 10 === 0) {
    console.log(`${i}/${rounds} rounds, ${failures.length} failed`);
  }
}
const seconds = (performance.now() - started) / 1000;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
console.log(
  `${rounds} crash rounds on ${locations.backend} in ${
    seconds.toFixed(1)
  } s: ` +
    `${rounds - failures.length} exactly once, ${failures.length} failed ` +
    `(child ${mean(child).toFixed(0)} ms, takeover ${
      mean(takeover).toFixed(0)
    } ms per round on average)`,
);
for (const failure of failures) console.log(failure);
if (failures.length > 0) Deno.exitCode = 1;
