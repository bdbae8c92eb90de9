// The repository: loads and saves users inside a Unit of Work, and tracks
// every aggregate it touches so their events publish after the commit.
import type { PostgresContext } from "../adapters/postgres/mod.ts";
import { EmailTakenError } from "./http.ts";
import { User, type UserRow } from "./user.ts";
import type { Sql } from "./schema.ts";

/** What the repository needs of a transaction context. */
export type Tx = PostgresContext<Sql & ((value: unknown) => unknown)>;

export class UserRepository {
  constructor(private readonly tx: Tx) {}

  /** Inserts a new user; throws EmailTakenError on a duplicate email. */
  async add(user: User): Promise<void> {
    const { sql } = this.tx;
    const row = user.row();
    try {
      await sql`
        insert into users (id, email, name, registered_at, welcome_email_sent_at)
        values (${row.id}, ${row.email}, ${row.name}, ${row.registered_at}, ${row.welcome_email_sent_at})`;
    } catch (e) {
      if (isUniqueViolation(e, "users_email_lower_key")) {
        throw new EmailTakenError();
      }
      throw e;
    }
    this.tx.track(user);
  }

  /** The user with this id, or null. */
  async get(id: string): Promise<User | null> {
    const rows = await this.tx.sql`
      select id, email, name, registered_at, welcome_email_sent_at
      from users where id = ${id}` as unknown as UserRow[];
    const row = rows[0];
    if (row === undefined) return null;
    const user = User.fromRow(row);
    this.tx.track(user);
    return user;
  }
}

function isUniqueViolation(e: unknown, constraint: string): boolean {
  const err = e as { code?: unknown; constraint_name?: unknown } | null;
  return err?.code === "23505" && err.constraint_name === constraint;
}
