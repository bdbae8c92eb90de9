// startUnitOfWorkTest(): the test kit's Unit of Work on embedded PGlite.
import assert from "node:assert/strict";
import { DomainEvent, EventType } from "../../../mod.ts";
import {
  expectNotPublished,
  expectPublished,
} from "../../../src/testing/mod.ts";
import { startUnitOfWorkTest } from "../../../src/testing/embedded.ts";

@EventType("test.kit.user-registered")
class UserRegistered extends DomainEvent {
  constructor(readonly email: string) {
    super();
  }
}

Deno.test("startUnitOfWorkTest(): schema, commits that publish on the recorded bus, rollbacks that do not", async (t) => {
  await using kit = await startUnitOfWorkTest({
    schema: `
      create table users (email text primary key);
      create table audit (what text not null);
    `,
  });
  const handled: string[] = [];
  kit.bus.register(UserRegistered, async (e) => {
    handled.push(e.email);
    await kit.sql`insert into audit values (${"registered"})`;
  });

  await t.step("a commit saves the rows, then publishes", async () => {
    await kit.uow.run(async (tx) => {
      await tx.sql`insert into users values (${"ada@example.org"})`;
      tx.publishAfterCommit(new UserRegistered("ada@example.org"));
    });
    expectPublished(kit.events, UserRegistered, { email: "ada@example.org" }, {
      count: 1,
    });
    assert.deepEqual(handled, ["ada@example.org"]);
    const audit = await kit.sql`select what from audit`;
    assert.deepEqual(audit.map((r) => r.what), ["registered"]);
  });

  await t.step("a rollback saves nothing and publishes nothing", async () => {
    kit.events.clear();
    const boom = new Error("work failed");
    await assert.rejects(
      kit.uow.run(async (tx) => {
        await tx.sql`insert into users values (${"bob@example.org"})`;
        tx.publishAfterCommit(new UserRegistered("bob@example.org"));
        throw boom;
      }),
      (e) => e === boom,
    );
    expectNotPublished(kit.events, UserRegistered);
    const users = await kit.sql`select email from users`;
    assert.deepEqual(users.map((r) => r.email), ["ada@example.org"]);
  });
});

Deno.test("startUnitOfWorkTest({ unitOfWork: { outbox: true } }) creates the outbox table and writes events to it", async () => {
  await using kit = await startUnitOfWorkTest({
    schema: "create table users (email text primary key)",
    unitOfWork: { outbox: true },
  });
  await kit.uow.run(async (tx) => {
    await tx.sql`insert into users values (${"ada@example.org"})`;
    tx.publishAfterCommit(new UserRegistered("ada@example.org"));
  });
  expectPublished(kit.events, UserRegistered, { email: "ada@example.org" });
  await kit.uow.flush(); // the row is marked done in the background
  const tables = await kit.sql`
    select table_name from information_schema.tables
    where table_schema = 'public' and table_name like '%outbox%'`;
  assert.equal(tables.length, 1, "the outbox table exists");
  const rows = await kit.sql`
    select type, done_at is not null as done
    from ${kit.sql(String(tables[0]!.table_name))}`;
  assert.deepEqual(rows.map((r) => [r.type, r.done]), [
    ["test.kit.user-registered", true],
  ]);
});

Deno.test("startUnitOfWorkTest() rejects bad options before starting anything, and stops the database when the schema fails", async () => {
  await assert.rejects(startUnitOfWorkTest("users" as never), {
    name: "TypeError",
    message:
      /Cannot start unit of work test: options must be an object, received a string/,
  });
  await assert.rejects(startUnitOfWorkTest({ schema: 42 as never }), {
    name: "TypeError",
    message:
      /options\.schema must be a non-empty string, received a number; pass SQL/,
  });
  await assert.rejects(startUnitOfWorkTest({ bus: {} as never }), {
    name: "TypeError",
    message: /Cannot record events: expected an EventBus/,
  });
  // The sanitizers fail this test if the database were left running.
  await assert.rejects(
    startUnitOfWorkTest({ schema: "create tabel users (id int)" }),
    /syntax error/,
  );
});
