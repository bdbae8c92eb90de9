// The example's aggregate: a user who registers, and the event it records.
import {
  AggregateRoot,
  DomainEvent,
  type DomainEventInit,
  EventType,
} from "../../mod.ts";

/**
 * Raised when a user registers. Carries ids only: handlers load what they
 * need. Its stable name lets the outbox relay rebuild it after a crash, even
 * if the class is renamed.
 */
@EventType("user.registered")
export class UserRegistered extends DomainEvent {
  constructor(readonly userId: string, init?: DomainEventInit) {
    super(init);
  }
}

/** A row of the `users` table. */
export interface UserRow {
  id: string;
  email: string;
  name: string;
  registered_at: Date;
  welcome_email_sent_at: Date | null;
}

/** The email is already registered (case-insensitive). */
export class EmailTakenError extends Error {
  constructor() {
    super("email is already registered");
    this.name = "EmailTakenError";
  }
}

/** A registration that breaks a rule, with the field at fault. */
export class ValidationError extends Error {
  constructor(readonly field: string, message: string) {
    super(message);
    this.name = "ValidationError";
  }
}

export const MAX_NAME_LENGTH = 100;
export const MAX_EMAIL_LENGTH = 254;
const EMAIL =
  /^[^\s@"(),:;<>[\\\]]+@[^\s@"(),:;<>[\\\]]+\.[^\s@"(),:;<>[\\\].]{2,}$/;

/** What `POST /users` accepts, once checked. */
export interface Registration {
  readonly email: string;
  readonly name: string;
}

/** Checks a decoded JSON object; throws a ValidationError naming the field. */
export function parseRegistration(body: Record<string, unknown>): Registration {
  const { email, name } = body;
  if (email === undefined || email === null) {
    throw new ValidationError("email", "email is required");
  }
  if (typeof email !== "string") {
    throw new ValidationError("email", "email must be a string");
  }
  const trimmedEmail = email.trim();
  if (trimmedEmail.length > MAX_EMAIL_LENGTH) {
    throw new ValidationError(
      "email",
      `email must be at most ${MAX_EMAIL_LENGTH} characters`,
    );
  }
  if (!EMAIL.test(trimmedEmail)) {
    throw new ValidationError(
      "email",
      "email must be a valid address such as ada@example.org",
    );
  }
  if (name === undefined || name === null) {
    throw new ValidationError("name", "name is required");
  }
  if (typeof name !== "string") {
    throw new ValidationError("name", "name must be a string");
  }
  const trimmedName = name.trim();
  if (trimmedName.length === 0) {
    throw new ValidationError("name", "name must not be empty");
  }
  if ([...trimmedName].length > MAX_NAME_LENGTH) {
    throw new ValidationError(
      "name",
      `name must be at most ${MAX_NAME_LENGTH} characters`,
    );
  }
  return { email: trimmedEmail, name: trimmedName };
}

/** A registered user: the aggregate root of the example. */
export class User extends AggregateRoot {
  private constructor(
    readonly id: string,
    readonly email: string,
    readonly name: string,
    readonly registeredAt: Date,
    readonly welcomeEmailSentAt: Date | null,
  ) {
    super();
  }

  /** Registers a new user and records `UserRegistered`. */
  static register(registration: Registration, now = new Date()): User {
    const user = new User(
      crypto.randomUUID(),
      registration.email,
      registration.name,
      now,
      null,
    );
    user.recordEvent(new UserRegistered(user.id, { occurredAt: now }));
    return user;
  }

  /** Rebuilds a user from its row; records nothing. */
  static fromRow(row: UserRow): User {
    return new User(
      row.id,
      row.email,
      row.name,
      row.registered_at,
      row.welcome_email_sent_at,
    );
  }

  /** The row to insert. */
  row(): UserRow {
    return {
      id: this.id,
      email: this.email,
      name: this.name,
      registered_at: this.registeredAt,
      welcome_email_sent_at: this.welcomeEmailSentAt,
    };
  }

  /** The JSON the API returns. */
  toJSON(): Record<string, unknown> {
    return {
      id: this.id,
      email: this.email,
      name: this.name,
      registeredAt: this.registeredAt.toISOString(),
      welcomeEmailSentAt: this.welcomeEmailSentAt?.toISOString() ?? null,
    };
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether `id` is a UUID (user ids are). */
export function isUserId(id: string): boolean {
  return UUID.test(id);
}
