// The repository: loads and saves users inside a Unit of Work, and tracks
// every aggregate it touches so their events publish after the commit.
import { EmailTakenError, User, type UserRow } from "./user.ts";
import type { Sql } from "./schema.ts";

/**
 * Reads and writes users. Inside a Unit of Work, give it the transaction's
 * `sql` and `track`, so the aggregates it saves publish their events after
 * the commit; for a plain read, the pool's `sql` is enough.
 */
export class UserRepository {
  constructor(
    private readonly sql: Sql,
    private readonly track: (user: User) => unknown = () => {},
  ) {}

  /** Inserts a new user; throws EmailTakenError on a duplicate email. */
  async add(user: User): Promise<void> {
    const { sql } = this;
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
    this.track(user);
  }

  /** The user with this id, or null. */
  async get(id: string): Promise<User | null> {
    const [row] = await this.sql<UserRow[]>`
      select id, email, name, registered_at, welcome_email_sent_at
      from users where id = ${id}`;
    if (row === undefined) return null;
    const user = User.fromRow(row);
    this.track(user);
    return user;
  }
}

function isUniqueViolation(e: unknown, constraint: string): boolean {
  const err = e as { code?: unknown; constraint_name?: unknown } | null;
  return err?.code === "23505" && err.constraint_name === constraint;
}
