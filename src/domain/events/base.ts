/**
 * An optional base class for domain events: the bus dispatches any class
 * instance, and this one adds a unique `eventId` and an `occurredAt`.
 *
 * @module
 */

/** Identity fields that {@linkcode DomainEvent} accepts when an event is rebuilt. */
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
 * A fact that happened in the domain, with a unique id (an idempotency key
 * for the outbox and the jobs) and a timestamp.
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
 *
 * const event = new UserRegistered("u1");
 * assert.equal(event.eventId.length, 36);
 * assert.ok(event.occurredAt instanceof Date);
 * ```
 */
export abstract class DomainEvent {
  /** A unique id (a UUID), stable across redelivery. */
  readonly eventId: string;
  /** When the event happened. */
  readonly occurredAt: Date;

  /**
   * Creates the event's identity, or reuses `init`'s when it is rebuilt.
   *
   * @throws {TypeError} When `init.eventId` is empty or `init.occurredAt`
   * is an invalid date.
   */
  constructor(init?: DomainEventInit) {
    const eventId = init?.eventId ?? crypto.randomUUID();
    if (typeof eventId !== "string" || eventId.length === 0) {
      throw new TypeError(
        `Cannot create event: eventId must be a non-empty string, received ${
          JSON.stringify(eventId)
        }`,
      );
    }
    const occurredAt = init?.occurredAt ?? new Date();
    if (!(occurredAt instanceof Date) || Number.isNaN(occurredAt.getTime())) {
      throw new TypeError(
        "Cannot create event: occurredAt must be a valid Date",
      );
    }
    this.eventId = eventId;
    this.occurredAt = occurredAt;
  }
}
