// A throwaway PostgreSQL cluster for the outage test: its own folder, port
// and socket, made with initdb and pg_ctl as the `postgres` user (initdb
// refuses root). Stopping it never touches the shared server on 5432.
import { createServer } from "node:net";

function pgBin(): string | undefined {
  for (const version of ["17", "16", "15", "14", "13"]) {
    const dir = `/usr/lib/postgresql/${version}/bin`;
    try {
      Deno.statSync(`${dir}/pg_ctl`);
      return dir;
    } catch {
      // try the next version
    }
  }
  return undefined;
}

/** A running throwaway cluster. */
export interface ThrowawayCluster extends AsyncDisposable {
  readonly url: string;
  start(): Promise<void>;
  stop(mode?: "fast" | "immediate"): Promise<void>;
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

async function sh(script: string): Promise<void> {
  const root = Deno.uid() === 0;
  const out = await new Deno.Command(root ? "su" : "sh", {
    args: root ? ["postgres", "-s", "/bin/sh", "-c", script] : ["-c", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `${script} failed: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
}

/** Whether initdb and pg_ctl are installed here. */
export function canMakeClusters(): boolean {
  return pgBin() !== undefined;
}

/** Creates and starts a cluster on a free port. */
export async function startThrowawayCluster(): Promise<ThrowawayCluster> {
  const bin = pgBin();
  if (bin === undefined) throw new Error("initdb and pg_ctl are not installed");
  const dir = await Deno.makeTempDir({ prefix: "aftercommit_outage_" });
  if (Deno.uid() === 0) {
    await new Deno.Command("chown", { args: ["postgres:postgres", dir] })
      .output();
  }
  const port = await freePort();
  await sh(
    `${bin}/initdb -D ${dir}/data -U postgres --auth=trust --no-sync >/dev/null`,
  );
  await sh(
    `printf '%s\\n' "port = ${port}" "listen_addresses = '127.0.0.1'" "unix_socket_directories = '${dir}'" "fsync = off" >> ${dir}/data/postgresql.conf`,
  );
  const ctl = (args: string) =>
    sh(
      `${bin}/pg_ctl -D ${dir}/data -l ${dir}/log -w -t 60 ${args} >/dev/null`,
    );
  await ctl("start");
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    start: () => ctl("start"),
    stop: (mode = "fast") => ctl(`-m ${mode} stop`),
    async [Symbol.asyncDispose]() {
      await ctl("-m immediate stop").catch(() => {});
      await Deno.remove(dir, { recursive: true });
    },
  };
}
