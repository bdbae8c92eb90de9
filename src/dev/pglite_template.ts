// New embedded data folders start from a copy of a fresh one instead of
// running initdb: PGlite's initdb (in WASM) takes 5-10 s, a copy of its
// ~40 MB, ~1,000 files takes well under a second. The fresh folder (the
// template) is made once per machine and PGlite version, in the user's cache
// folder (never in the repository), and reused by every later new data folder
// and fresh clone; when both databases are new, one initdb serves both.
//
// A folder may also start from a derived template: a copy of the fresh one
// that a `TemplateKind` has built on (the jobs database: pg-boss's schema,
// whose creation is most of a new jobs database's start), made once per
// machine and kind name, which carries the versions it depends on. It is
// built by `buildTemplate()` while the dev server runs, off the start's
// path: until it exists, such a folder starts from the fresh template.
//
// Crash safety: the template and each copy are written to a temporary folder
// beside their destination and renamed into place, so a folder is either
// missing or complete. Concurrent first starts each build their own
// temporary template; the first rename wins and the others are dropped.
import { getLogger } from "@logtape/logtape";

const logger = getLogger(["dev", "template"]);

/** A template derived from the fresh one, for some of the new folders. */
export interface TemplateKind {
  /**
   * Its folder's name under the template root: one template per name, so
   * the name carries every version the built state depends on.
   */
  readonly name: string;
  /** Builds on a copy of the fresh template, closing what it opens. */
  build(dir: string): Promise<void>;
}

/** The folder that keeps the template, or undefined when there is none. */
export function defaultTemplateRoot(
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): string | undefined {
  const version = pgliteVersion();
  if (version === undefined) return undefined;
  const cache = env("XDG_CACHE_HOME") ||
    (env("HOME") ? join(env("HOME")!, ".cache") : env("LOCALAPPDATA"));
  if (!cache) return undefined;
  return join(cache, "aftercommit", `pglite-${version}`);
}

/** The installed PGlite's version, read from where the import resolves. */
function pgliteVersion(): string | undefined {
  const resolved = import.meta.resolve("@electric-sql/pglite");
  return /pglite@(\d[^/_]*)/.exec(resolved)?.[1];
}

/**
 * Fills each of `dirs` that is missing or empty with a copy of a fresh
 * PGlite data folder, made under `templateRoot` when it is not there yet,
 * or of the template of its kind in `kinds` when that one exists. Folders
 * that hold anything are left alone. The caller holds the lock of the
 * folders' parent (no other process opens them).
 *
 * @returns The folders that were filled.
 */
export async function prepareDataDirs(
  dirs: readonly string[],
  templateRoot: string,
  kinds: Readonly<Record<string, TemplateKind>> = {},
): Promise<string[]> {
  const fresh: string[] = [];
  for (const dir of dirs) {
    await removeStaleCopies(dir);
    if (await isEmpty(dir)) fresh.push(dir);
  }
  if (fresh.length === 0) return [];
  let template: string;
  try {
    template = await ensureTemplate(templateRoot);
  } catch (e) {
    // No template (a read-only cache folder, a full disk): PGlite creates
    // each new database itself, as slowly as before.
    logger.warn(
      "No template for new embedded databases in {path} ({error}): creating them one by one",
      { path: templateRoot, error: String(e) },
    );
    return [];
  }
  await Promise.all(fresh.map(async (dir) => {
    const kind = Object.hasOwn(kinds, dir) ? kinds[dir] : undefined;
    const derived = kind && join(templateRoot, kind.name);
    const from = derived && await exists(join(derived, "PG_VERSION"))
      ? derived
      : template;
    await copyInto(from, dir);
  }));
  return fresh;
}

/**
 * Builds `kind`'s template under `templateRoot` from the fresh one, unless
 * it exists or there is no fresh one (then nothing happens). Never throws:
 * a failure is logged, and new folders keep starting from the fresh one.
 */
export async function buildTemplate(
  templateRoot: string,
  kind: TemplateKind,
): Promise<void> {
  const template = join(templateRoot, "data");
  const derived = join(templateRoot, kind.name);
  const temp = tempName(derived);
  const started = performance.now();
  try {
    if (await exists(join(derived, "PG_VERSION"))) return;
    if (!(await exists(join(template, "PG_VERSION")))) return;
    await removeStaleTemplates(derived);
    await copyTree(template, temp);
    await kind.build(temp);
    try {
      await Deno.rename(temp, derived);
    } catch (e) {
      // Another process renamed its template first: keep that one.
      if (!(await exists(join(derived, "PG_VERSION")))) throw e;
      await Deno.remove(temp, { recursive: true });
      return;
    }
  } catch (e) {
    await Deno.remove(temp, { recursive: true }).catch(() => {});
    logger.warn(
      "Cannot make the {kind} template in {path} ({error}): new folders start from the fresh one",
      { kind: kind.name, path: derived, error: String(e) },
    );
    return;
  }
  logger.info("Made the {kind} template in {ms} ms: {path}", {
    kind: kind.name,
    ms: Math.round(performance.now() - started),
    path: derived,
  });
}

async function isEmpty(dir: string): Promise<boolean> {
  try {
    for await (const _ of Deno.readDir(dir)) return false;
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return true;
    throw e;
  }
}

const tempName = (path: string) =>
  `${path}.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;

/** Drops the half-written copies a killed start left beside `dir`. */
async function removeStaleCopies(dir: string): Promise<void> {
  const parent = parentOf(dir);
  const prefix = `${basename(dir)}.tmp-`;
  try {
    for await (const entry of Deno.readDir(parent)) {
      if (entry.name.startsWith(prefix)) {
        await Deno.remove(join(parent, entry.name), { recursive: true });
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

// Forward slashes work on every platform Deno runs on.
function join(...parts: string[]): string {
  return parts.map((p, i) => i === 0 ? p.replace(/[\\/]+$/, "") : p).join("/");
}

function parentOf(path: string): string {
  const trimmed = path.replace(/[\\/]+$/, "");
  const cut = Math.max(trimmed.lastIndexOf("/"), trimmed.lastIndexOf("\\"));
  return cut < 0 ? "." : cut === 0 ? "/" : trimmed.slice(0, cut);
}

function basename(path: string): string {
  return path.replace(/[\\/]+$/, "").split(/[\\/]/).pop()!;
}

/** The template's folder, made by one initdb when it is missing. */
async function ensureTemplate(root: string): Promise<string> {
  const template = join(root, "data");
  if (await exists(join(template, "PG_VERSION"))) return template;
  await Deno.mkdir(root, { recursive: true });
  await removeStaleTemplates(template);
  const temp = tempName(template);
  const started = performance.now();
  try {
    const { PGlite } = await import("@electric-sql/pglite");
    const pglite = await PGlite.create(temp);
    await pglite.close();
    try {
      await Deno.rename(temp, template);
    } catch (e) {
      // Another start renamed its template first: use that one.
      if (!(await exists(join(template, "PG_VERSION")))) throw e;
      await Deno.remove(temp, { recursive: true });
    }
  } catch (e) {
    await Deno.remove(temp, { recursive: true }).catch(() => {});
    throw e;
  }
  logger.info(
    "Made the template of new embedded databases in {ms} ms: {path}",
    {
      ms: Math.round(performance.now() - started),
      path: template,
    },
  );
  return template;
}

/**
 * Drops the temporary templates of starts killed over an hour ago (a
 * running start's is minutes old at most; other processes share this folder).
 */
async function removeStaleTemplates(template: string): Promise<void> {
  const parent = parentOf(template);
  const prefix = `${basename(template)}.tmp-`;
  for await (const entry of Deno.readDir(parent)) {
    if (!entry.name.startsWith(prefix)) continue;
    const path = join(parent, entry.name);
    const { mtime } = await Deno.stat(path);
    if (mtime !== null && Date.now() - mtime.getTime() > 3_600_000) {
      await Deno.remove(path, { recursive: true }).catch(() => {});
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function copyInto(template: string, dir: string): Promise<void> {
  await Deno.mkdir(parentOf(dir), { recursive: true });
  const temp = tempName(dir);
  try {
    await copyTree(template, temp);
    // An empty folder is replaced (rename cannot replace one on Windows).
    await Deno.remove(dir).catch((e) => {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    });
    await Deno.rename(temp, dir);
  } catch (e) {
    await Deno.remove(temp, { recursive: true }).catch(() => {});
    throw e;
  }
}

async function copyTree(from: string, to: string): Promise<void> {
  await Deno.mkdir(to);
  const copies: Promise<void>[] = [];
  for await (const entry of Deno.readDir(from)) {
    const source = join(from, entry.name);
    const target = join(to, entry.name);
    if (entry.isDirectory) copies.push(copyTree(source, target));
    else copies.push(Deno.copyFile(source, target));
  }
  await Promise.all(copies);
}
