/**
 * Test helpers for code that publishes events and enqueues jobs: record
 * what a bus published ({@linkcode recordEvents}), assert on it
 * ({@linkcode expectPublished}, {@linkcode expectNotPublished}), and a job
 * queue in memory ({@linkcode InMemoryJobQueue}) that records enqueues and
 * runs the jobs when asked. Loads no database driver.
 *
 * @example A handler, its event and its job
 * ```ts
 * import assert from "node:assert/strict";
 * import { EventBus } from "@aftercommit/core";
 * import {
 *   expectPublished,
 *   InMemoryJobQueue,
 *   recordEvents,
 * } from "@aftercommit/core/testing";
 *
 * class UserRegistered {
 *   constructor(readonly userId: string) {}
 * }
 * const bus = new EventBus();
 * const jobs = new InMemoryJobQueue();
 * bus.register(UserRegistered, async ({ userId }) => {
 *   await jobs.enqueue("send-welcome-email", { userId });
 * });
 * using recorder = recordEvents(bus);
 * await bus.publish(new UserRegistered("u1"));
 *
 * expectPublished(recorder, UserRegistered, { userId: "u1" });
 * assert.deepEqual(jobs.jobs.map((j) => j.data), [{ userId: "u1" }]);
 * ```
 *
 * @module
 */
export * from "./event_recorder.ts";
export * from "./expect_published.ts";
export * from "./in_memory_job_queue.ts";
