// Crash tests' child processes: run a script until it prints "ready …" (it
// then blocks at the point under test), kill it with SIGKILL, and return
// the words it printed after "ready".
import assert from "node:assert/strict";

/**
 * Runs `deno run --allow-all --frozen script ...args` in `cwd` until it
 * prints a line starting with "ready", then SIGKILLs it.
 *
 * @param stage What the child blocks at, for the error messages.
 * @returns The words after "ready" on that line.
 */
export async function killChildWhenReady(
  script: string,
  args: readonly string[],
  cwd: string,
  stage: string,
): Promise<string[]> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", "--frozen", script, ...args],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  let waitError: unknown;
  try {
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`The child did not reach "${stage}" in 60 s`)),
        60_000,
      );
    });
    while (!out.includes("\n")) {
      const { value, done } = await Promise.race([reader.read(), timeout]);
      if (done) break;
      out += value;
    }
  } catch (error) {
    waitError = error;
  } finally {
    clearTimeout(timer);
  }
  try {
    child.kill("SIGKILL");
  } catch {
    // It exited by itself: reported below.
  }
  const status = await child.status;
  reader.releaseLock();
  await child.stdout.cancel().catch(() => {});
  const err = await stderr;
  if (waitError !== undefined || !out.startsWith("ready ")) {
    throw new Error(
      `The child exited (${status.code}) before "${stage}": ${out}\n${err}`,
      { cause: waitError },
    );
  }
  assert.equal(status.signal, "SIGKILL", `the child was killed: ${err}`);
  return out.trim().split(" ").slice(1);
}
