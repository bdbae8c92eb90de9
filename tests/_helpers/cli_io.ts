// A terminal for the CLI's main() in tests.
import type { CliIo } from "../../src/cli/mod.ts";

/** A CLI terminal that records output and answers prompts from a list. */
export function fakeIo(answers: boolean[] = []): CliIo & {
  stdout: string;
  stderr: string;
  asked: string[];
} {
  const io = {
    stdout: "",
    stderr: "",
    asked: [] as string[],
    out(text: string) {
      io.stdout += text;
    },
    err(text: string) {
      io.stderr += text;
    },
    confirm(question: string) {
      io.asked.push(question);
      return Promise.resolve(answers.shift() ?? false);
    },
  };
  return io;
}
