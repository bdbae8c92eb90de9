// A fresh database on a real PostgreSQL server, for one test file: created
// with a random name, dropped (with force) when the file is done.
import postgres from "postgres";

/** A database created for a test, and how to drop it. */
export interface ServerDatabase {
  /** The server URL with the new database's name as its path. */
  readonly url: string;
  /** Drops the database, closing any connection still open to it. */
  drop(): Promise<void>;
}

/**
 * Creates a database named `<prefix>_<random>` on the server of `serverUrl`.
 *
 * @param serverUrl A URL of the server (any database on it).
 * @param prefix The start of the name, to tell test databases apart.
 */
export async function createServerDatabase(
  serverUrl: string,
  prefix: string,
): Promise<ServerDatabase> {
  const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
  const name = `${prefix}_${
    crypto.randomUUID().replaceAll("-", "").slice(0, 16)
  }`;
  try {
    await admin.unsafe(`create database "${name}"`);
  } catch (error) {
    await admin.end();
    throw error;
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.href,
    async drop() {
      try {
        await admin.unsafe(`drop database if exists "${name}" with (force)`);
      } finally {
        await admin.end();
      }
    },
  };
}
