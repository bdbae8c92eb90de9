// The example's tables, created at start-up (idempotent).

import type postgres from "postgres";

/** The example's client type: any postgres.js client or transaction. */
export type Sql = postgres.Sql | postgres.TransactionSql;

/** Creates the example's tables if they do not exist. */
export async function createSchema(sql: Sql): Promise<void> {
  await sql`
    create table if not exists users (
      id uuid primary key,
      email text not null,
      name text not null,
      registered_at timestamptz not null,
      welcome_email_sent_at timestamptz
    )`;
  await sql`create unique index if not exists users_email_lower_key on users (lower(email))`;
  await sql`
    create table if not exists audit_trail (
      event_id uuid primary key,
      event_type text not null,
      user_id uuid not null,
      occurred_at timestamptz not null,
      recorded_at timestamptz not null default now()
    )`;
  await sql`
    create table if not exists dev_mailbox (
      job_id uuid primary key,
      user_id uuid not null,
      to_address text not null,
      subject text not null,
      body text not null,
      sent_at timestamptz not null default now()
    )`;
}
