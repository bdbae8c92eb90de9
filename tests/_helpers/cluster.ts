// A throwaway PostgreSQL cluster for fault tests: its own data folder, port
// and socket folder, made with the machine's initdb and pg_ctl as the
// `postgres` user (initdb refuses root). Stopping, killing and restarting it
// never touches the shared server on 5432.
import { createServer } from "node:net";
import { run } from "./command.ts";

const BIN = Deno.env.get("PG_BIN") ?? findBin();

function findBin(): string {
  for (const version of ["17", "16", "15", "14", "13"]) {
    const dir = `/usr/lib/postgresql/${version}/bin`;
    try {
      Deno.statSync(`${dir}/pg_ctl`);
      return dir;
    } catch {
      // next
    }
  }
  return "/usr/lib/postgresql/15/bin";
}

/** How `pg_ctl stop` ends the server. */
export type StopMode = "smart" | "fast" | "immediate";

/** A running throwaway cluster. */
export interface Cluster extends AsyncDisposable {
  /** `postgres://postgres@127.0.0.1:<port>/postgres`. */
  readonly url: string;
  readonly port: number;
  /** Starts the server (after a stop). */
  start(): Promise<void>;
  /** Stops the server. */
  stop(mode?: StopMode): Promise<void>;
  /** Stops with `mode`, then starts. */
  restart(mode?: StopMode): Promise<void>;
  /** Runs SQL through psql on the socket (works while other sessions die). */
  psql(sql: string): Promise<string>;
  /** Terminates every client backend but psql's own; returns how many. */
  terminateBackends(): Promise<number>;
  /** Stops the server (immediately) and deletes its folder. */
  destroy(): Promise<void>;
}

/** Whether initdb and pg_ctl can be run here (as root through `su`, or as postgres). */
export function clustersAvailable(): boolean {
  try {
    Deno.statSync(`${BIN}/initdb`);
    return true;
  } catch {
    return false;
  }
}

async function freePort(): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

const isRoot = Deno.uid() === 0;

// Runs a shell command as the postgres user.
function asPostgres(script: string): Promise<string> {
  return isRoot
    ? run("su", ["postgres", "-s", "/bin/sh", "-c", script])
    : run("sh", ["-c", script]);
}

function quote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * Creates and starts a cluster on a free port.
 *
 * @param settings `postgresql.conf` lines, such as `synchronous_standby_names = 'nobody'`.
 */
export async function startCluster(
  settings: readonly string[] = [],
): Promise<Cluster> {
  const dir = await Deno.makeTempDir({ prefix: "aftercommit_pg_" });
  if (isRoot) await run("chown", ["postgres:postgres", dir]);
  const data = `${dir}/data`;
  await asPostgres(
    `${BIN}/initdb -D ${
      quote(data)
    } -U postgres --auth=trust --no-sync >/dev/null`,
  );
  const port = await freePort();
  const conf = [
    `port = ${port}`,
    `listen_addresses = '127.0.0.1'`,
    `unix_socket_directories = '${dir}'`,
    "fsync = off",
    "max_connections = 100",
    "shared_buffers = 32MB",
    ...settings,
  ].join("\n");
  await asPostgres(
    `printf '%s\\n' ${quote(conf)} >> ${quote(`${data}/postgresql.conf`)}`,
  );
  const ctl = (args: string) =>
    asPostgres(
      `${BIN}/pg_ctl -D ${quote(data)} -l ${quote(`${dir}/log`)} ${args}`,
    );
  const cluster: Cluster = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async start() {
      await ctl("-w -t 60 start >/dev/null");
    },
    async stop(mode = "fast") {
      await ctl(`-w -t 60 -m ${mode} stop >/dev/null`);
    },
    async restart(mode = "fast") {
      await cluster.stop(mode);
      await cluster.start();
    },
    psql(sql: string) {
      return asPostgres(
        `${BIN}/psql -X -q -A -t -h ${
          quote(dir)
        } -p ${port} -U postgres -d postgres -c ${quote(sql)}`,
      );
    },
    async terminateBackends() {
      const out = await cluster.psql(
        "select count(pg_terminate_backend(pid)) from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()",
      );
      return Number(out.trim());
    },
    async destroy() {
      try {
        await ctl("-w -m immediate stop >/dev/null 2>&1 || true");
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
    [Symbol.asyncDispose]() {
      return cluster.destroy();
    },
  };
  await cluster.start();
  return cluster;
}
