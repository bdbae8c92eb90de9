import assert from "node:assert/strict";
import { parseRegistration, ValidationError } from "../../../src/dev/user.ts";

const valid = { email: "ada@example.org", name: "Ada Lovelace" };

Deno.test("parseRegistration() normalises to NFC and trims", () => {
  assert.deepEqual(
    parseRegistration({ email: " ada@example.org ", name: " Zoe\u0301 " }),
    { email: "ada@example.org", name: "Zo\u00e9" },
  );
});

Deno.test("parseRegistration() accepts what the WHATWG email rule accepts, with a dotted domain", () => {
  for (
    const email of [
      "o'brien+tag@sub.example.co",
      "a.b-c_d@example-site.org",
      "x@xn--p1ai.xn--p1ai",
      `${"a".repeat(64)}@example.org`,
    ]
  ) {
    assert.equal(parseRegistration({ ...valid, email }).email, email);
  }
});

Deno.test("parseRegistration() refuses characters PostgreSQL cannot store or users do not expect, naming the field", () => {
  const cases: [Record<string, unknown>, string, RegExp][] = [
    [{ name: "Ada\u0000" }, "name", /control characters .*U\+0000/],
    [{ email: "a\u0000@example.org" }, "email", /control characters/],
    [{ name: "Ada\ud800" }, "name", /lone surrogate/],
    [{ email: "a\udc00@example.org" }, "email", /lone surrogate/],
    [{ name: "Ada\u001b[31m" }, "name", /U\+001B/],
    [{ name: "Ada\u0085" }, "name", /U\+0085/],
    [{ name: "Ada\u2029" }, "name", /U\+2029/],
    [{ name: "Ada\u2066" }, "name", /U\+2066/],
    [{ name: "Ada\tLovelace" }, "name", /U\+0009/],
    [{ email: "ada@localhost" }, "email", /valid address/],
    [{ email: "ada@example.123" }, "email", /valid address/],
    [{ email: "ada@exa_mple.org" }, "email", /valid address/],
    [{ email: "ada@example-.org" }, "email", /valid address/],
    [{ email: "ada(x)@example.org" }, "email", /valid address/],
    [{ email: '"ada"@example.org' }, "email", /valid address/],
    [{ email: "ada@exämple.org" }, "email", /valid address/],
    [{ email: `${"a".repeat(65)}@example.org` }, "email", /valid address/],
    [{ email: `a@${"b".repeat(250)}.org` }, "email", /at most 254/],
    [{ name: "n".repeat(101) }, "name", /at most 100/],
    [{ name: " \u3000 " }, "name", /must not be empty/],
    [{ name: 1 }, "name", /must be a string/],
    [{ email: undefined }, "email", /is required/],
  ];
  for (const [change, field, message] of cases) {
    assert.throws(
      () => parseRegistration({ ...valid, ...change }),
      (e: unknown) =>
        e instanceof ValidationError && e.field === field &&
        message.test(e.message),
      JSON.stringify(change),
    );
  }
});
