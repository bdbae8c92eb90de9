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
const MAX_LOCAL_PART_LENGTH = 64;

// The WHATWG rule for <input type=email> (ASCII only; an international
// domain is written in its xn-- form), made stricter: the domain needs a dot
// and a last label that starts with a letter (no "ada@localhost", no
// "ada@10.0.0.1"), and the part before the @ is at most 64 characters.
const LABEL = "[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?";
const LAST_LABEL = "[a-zA-Z](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])";
const EMAIL = new RegExp(
  `^[a-zA-Z0-9.!#$%&'*+/=?^_\`{|}~-]+@(?:${LABEL}\\.)+${LAST_LABEL}$`,
);

// Characters a name or an email must not hold: C0 and C1 controls (NUL
// among them: PostgreSQL cannot store it), line and paragraph separators,
// and the bidirectional overrides that make text display as something else.
const FORBIDDEN = /[\p{Cc}\p{Zl}\p{Zp}\u202A-\u202E\u2066-\u2069]/u;

/** What `POST /users` accepts, once checked. */
export interface Registration {
  readonly email: string;
  readonly name: string;
}

/**
 * Checks one text field: a string, well-formed Unicode (no lone
 * surrogates), no control characters; returns it NFC-normalised and trimmed.
 */
function text(value: unknown, field: string): string {
  if (value === undefined || value === null) {
    throw new ValidationError(field, `${field} is required`);
  }
  if (typeof value !== "string") {
    throw new ValidationError(field, `${field} must be a string`);
  }
  if (!value.isWellFormed()) {
    throw new ValidationError(
      field,
      `${field} must be well-formed Unicode: it holds a lone surrogate (an unpaired \\ud800-\\udfff escape)`,
    );
  }
  const bad = FORBIDDEN.exec(value);
  if (bad !== null) {
    const code = bad[0].codePointAt(0)!.toString(16).toUpperCase();
    throw new ValidationError(
      field,
      `${field} must not contain control characters (such as NUL, line breaks or bidirectional overrides): found U+${
        code.padStart(4, "0")
      }`,
    );
  }
  return value.normalize("NFC").trim();
}

/** Checks a decoded JSON object; throws a ValidationError naming the field. */
export function parseRegistration(body: Record<string, unknown>): Registration {
  const email = text(body.email, "email");
  if (email.length > MAX_EMAIL_LENGTH) {
    throw new ValidationError(
      "email",
      `email must be at most ${MAX_EMAIL_LENGTH} characters`,
    );
  }
  if (!EMAIL.test(email) || email.indexOf("@") > MAX_LOCAL_PART_LENGTH) {
    throw new ValidationError(
      "email",
      "email must be a valid address such as ada@example.org",
    );
  }
  const name = text(body.name, "name");
  if (name.length === 0) {
    throw new ValidationError("name", "name must not be empty");
  }
  if ([...name].length > MAX_NAME_LENGTH) {
    throw new ValidationError(
      "name",
      `name must be at most ${MAX_NAME_LENGTH} characters`,
    );
  }
  return { email, name };
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
