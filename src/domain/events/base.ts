/** Identity that {@linkcode DomainEvent} reuses when an event is rebuilt. */
export interface DomainEventInit {
  /**
   * The event's unique id.
   * @default {crypto.randomUUID()}
   */
  readonly eventId?: string;
  /**
   * When the event happened.
   * @default {new Date()}
   */
  readonly occurredAt?: Date;
}

/**
 * An optional base for domain events (the bus dispatches any class instance)
 * that adds a unique id (an idempotency key for the outbox and the jobs) and
 * a timestamp.
 *
 * @example Define and create an event
 * ```ts
 * import assert from "node:assert/strict";
 * import { DomainEvent } from "@aftercommit/core";
 *
 * class UserRegistered extends DomainEvent {
 *   constructor(readonly userId: string) {
 *     super();
 *   }
 * }
 * assert.equal(new UserRegistered("u1").eventId.length, 36);
 * ```
 */
export abstract class DomainEvent {
  /** A unique id (a UUID), stable across redelivery. */
  readonly eventId: string;
  /** When the event happened. */
  readonly occurredAt: Date;

  /**
   * Creates the event's identity, or reuses `init`'s.
   *
   * @throws {TypeError} When `init.eventId` is empty or `init.occurredAt`
   * is an invalid date.
   */
  constructor(init?: DomainEventInit) {
    const eventId = init?.eventId ?? crypto.randomUUID();
    const occurredAt = init?.occurredAt ?? new Date();
    const problem = typeof eventId !== "string" || eventId === ""
      ? `eventId must be a non-empty string, received ${
        JSON.stringify(eventId)
      }`
      : !(occurredAt instanceof Date) || Number.isNaN(occurredAt.getTime())
      ? "occurredAt must be a valid Date"
      : undefined;
    if (problem) throw new TypeError(`Cannot create event: ${problem}`);
    this.eventId = eventId;
    this.occurredAt = occurredAt;
  }
}
