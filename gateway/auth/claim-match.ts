/**
 * How a configured claim value is compared with a token's: the one rule behind trust policies'
 * `match` and an issuer's `requiredClaims`. Only string claims match: a number, a boolean or a
 * list in the token never equals a configured string, so a type confusion fails closed.
 */

/** A configured value: a string or a list of them (any one will do); a trailing `*` makes it a prefix. */
export type ClaimExpectation = string | readonly string[];

/**
 * @example claimMatches("refs/heads/main", "refs/heads/main") // true
 * @example claimMatches("refs/heads/main-x", "refs/heads/main") // false
 * @example claimMatches("refs/tags/v1.2", ["refs/heads/main", "refs/tags/v*"]) // true
 */
export function claimMatches(actual: unknown, expected: ClaimExpectation): boolean {
  if (typeof actual !== "string") {
    return false;
  }
  const options = typeof expected === "string" ? [expected] : expected;
  return options.some((option) => (option.endsWith("*") ? actual.startsWith(option.slice(0, -1)) : actual === option));
}

/** True when every listed claim matches. */
export function claimsMatch(claims: Record<string, unknown>, expected: Record<string, ClaimExpectation>): boolean {
  return Object.entries(expected).every(([name, value]) => claimMatches(claims[name], value));
}

const SHOWN = 100;

/**
 * A token's claims as a refusal may show them: `repository="org/x", ref=(missing)`. Values are
 * JSON-quoted (no control characters reach a log or a terminal) and cut short.
 * @example describeClaims({ repository: "org/x" }, ["repository", "ref"]) // 'repository="org/x", ref=(missing)'
 */
export function describeClaims(claims: Record<string, unknown>, names: Iterable<string>): string {
  return [...new Set(names)]
    .map((name) => {
      const value = claims[name];
      if (value === undefined) {
        return `${name}=(missing)`;
      }
      const text = JSON.stringify(value) ?? String(value);
      return `${name}=${text.length > SHOWN ? `${text.slice(0, SHOWN)}…` : text}`;
    })
    .join(", ");
}
