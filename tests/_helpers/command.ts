// Running a command to its end from a test helper.

/**
 * Runs `command` with `args` (in `cwd`) and returns what it wrote to
 * stdout; throws with its exit code, stderr and stdout when it fails.
 */
export async function run(
  command: string,
  args: readonly string[],
  cwd = Deno.cwd(),
): Promise<string> {
  const out = await new Deno.Command(command, {
    args: [...args],
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `${command} ${args.join(" ")} failed (${out.code}): ${
        new TextDecoder().decode(out.stderr)
      }${text}`,
    );
  }
  return text;
}
