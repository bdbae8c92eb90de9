// One dev server per data folder: an OS lock on DATA_DIR/dev.lock, taken
// before any database opens. The operating system releases it when the
// process ends, however it ends (SIGKILL too), so it never goes stale.
import { StartupError } from "./startup_error.ts";

/** How long to wait for the lock: a free lock is granted at once. */
const WAIT_MS = 500;

/**
 * Takes the data folder's lock and keeps it while the returned file is open.
 *
 * @param dataDir The data folder (created when missing).
 * @returns The open lock file; close it to release the lock.
 * @throws {StartupError} When another process holds the lock.
 */
export async function lockDataDir(dataDir: string): Promise<Deno.FsFile> {
  await Deno.mkdir(dataDir, { recursive: true });
  const path = `${dataDir}/dev.lock`;
  const file = await Deno.open(path, { read: true, write: true, create: true });
  // Deno has no try-lock: wait briefly for an exclusive lock. When another
  // process holds it, the lock request stays pending and the caller exits.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const got = await Promise.race([
    file.lock(true).then(() => true),
    new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), WAIT_MS);
    }),
  ]);
  clearTimeout(timer);
  if (!got) {
    const holder = (await Deno.readTextFile(path).catch(() => "")).trim();
    throw new StartupError(
      `another dev server${
        /^\d+$/.test(holder) ? ` (process ${holder})` : ""
      } is using the data folder ${dataDir}: stop it, or set DATA_DIR to another folder`,
    );
  }
  await file.truncate(0);
  await file.write(new TextEncoder().encode(`${Deno.pid}\n`));
  return file;
}
