// New embedded jobs databases start from a template with pg-boss's schema in
// place: creating it is most of a new jobs database's start (0.5-0.9 s of
// CPU against 0.15 s for pg-boss on an existing one). The template is made
// once per machine, PGlite version and pg-boss version, while a dev server
// runs (app.ts); pg-boss checks and migrates its schema at every start, as
// on any existing jobs database.
import { PgBossJobQueue } from "../adapters/pg-boss/mod.ts";
import type { TemplateKind } from "./pglite_template.ts";

/** The jobs database's template kind, or undefined without a pg-boss version. */
export function pgBossTemplate(): TemplateKind | undefined {
  const version = /pg-boss@(\d[^/_]*)/.exec(import.meta.resolve("pg-boss"))
    ?.[1];
  if (version === undefined) return undefined;
  return {
    name: `pg-boss-${version}`,
    async build(dir) {
      const { PGlite } = await import("@electric-sql/pglite");
      const pglite = await PGlite.create(dir);
      try {
        const jobs = await PgBossJobQueue.connect(pglite, {});
        await jobs.stop();
      } finally {
        await pglite.close();
      }
    },
  };
}
