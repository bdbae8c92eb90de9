/**
 * aftercommit: domain events published after the Unit of Work commits, to
 * handlers registered with standard decorators (`@On(UserRegistered)`). This
 * entry point loads no database driver: adapters and test helpers are entry
 * points of their own (`@aftercommit/core/postgres`, `…/testing`).
 *
 * @example Handlers and publishing
 * ```ts
 * import assert from "node:assert/strict";
 * import { clearHandlers, On, publishAll } from "@aftercommit/core";
 *
 * class UserRegistered {
 *   constructor(readonly userId: string) {}
 * }
 * class Audit {
 *   static trail: string[] = [];
 *   @On(UserRegistered)
 *   static record(event: UserRegistered): void {
 *     Audit.trail.push(event.userId);
 *   }
 * }
 * await publishAll([new UserRegistered("u1"), new UserRegistered("u2")]);
 * assert.deepEqual(Audit.trail, ["u1", "u2"]);
 * clearHandlers();
 * ```
 *
 * @module
 */
export { DomainEvent, type DomainEventInit } from "./src/domain/events/base.ts";
export { AggregateRoot } from "./src/domain/aggregate_root.ts";
export type {
  EventClass,
  EventHandler,
  HandlerContext,
  HandlerInfo,
} from "./src/application/types.ts";
export { Subscription } from "./src/application/subscription.ts";
export {
  clearHandlers,
  defaultBus,
  type ErrorPolicy,
  EventBus,
  type EventBusOptions,
  type OnAnyOptions,
  publish,
  publishAll,
  type PublishOptions,
  register,
  type RegisterOptions,
} from "./src/application/event_bus.ts";
export {
  On,
  OnAny,
  type OnDecorator,
  type OnOptions,
} from "./src/application/decorators.ts";
export type {
  EnqueueOptions,
  Job,
  JobHandler,
  JobQueue,
  JobRequest,
  WorkOptions,
} from "./src/application/job_queue.ts";
export { BatchingJobQueue } from "./src/application/batching_job_queue.ts";
export {
  defaultEventRegistry,
  EventRegistry,
  EventType,
  type EventTypeOptions,
  type SerializedEvent,
  UnknownEventTypeError,
} from "./src/application/outbox/event_registry.ts";
export {
  CommitError,
  CommitOutcomeUnknownError,
  type CommitOutcomeUnknownErrorOptions,
  type EventDelay,
  type EventPublisher,
  PublishAfterCommitError,
  type PublishAfterCommitErrorOptions,
  type PublishAfterCommitOptions,
  UnitOfWork,
  type UnitOfWorkContext,
  UnitOfWorkError,
  type UnitOfWorkOptions,
} from "./src/application/unit_of_work.ts";
