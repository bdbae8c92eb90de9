/**
 * Test helpers for code that publishes events and enqueues jobs: record
 * what a bus published ({@linkcode recordEvents}), assert on it
 * ({@linkcode expectPublished}, {@linkcode expectNotPublished}), and a job
 * queue in memory ({@linkcode InMemoryJobQueue}) that records enqueues and
 * runs the jobs when asked. Loads no database driver.
 *
 * @example A handler, its event and its job, in a few lines
 * ```ts
 * import assert from "node:assert/strict";
 * import { EventBus, type JobQueue, On } from "@aftercommit/core";
 * import {
 *   expectPublished,
 *   InMemoryJobQueue,
 *   recordEvents,
 * } from "@aftercommit/core/testing";
 *
 * class UserRegistered {
 *   constructor(readonly userId: string) {}
 * }
 * class Welcome {
 *   constructor(private readonly jobs: JobQueue) {}
 *   @On(UserRegistered)
 *   async enqueue(e: UserRegistered): Promise<void> {
 *     await this.jobs.enqueue("send-welcome-email", { userId: e.userId });
 *   }
 * }
 *
 * const bus = new EventBus();
 * const jobs = new InMemoryJobQueue();
 * bus.subscribe(new Welcome(jobs));
 * using recorder = recordEvents(bus);
 *
 * await bus.publish(new UserRegistered("u1"));
 *
 * expectPublished(recorder, UserRegistered, { userId: "u1" });
 * assert.deepEqual(jobs.jobsNamed("send-welcome-email").map((j) => j.data), [
 *   { userId: "u1" },
 * ]);
 * ```
 *
 * @module
 */
export * from "./event_recorder.ts";
export * from "./expect_published.ts";
export * from "./in_memory_job_queue.ts";
