/**
 * The one claim-matching rule of gateway/auth/oidc-config.ts (`requiredClaims`, trust policy `match`):
 * the token's claim must equal the expected value or one of the expected values; an expected value
 * ending in `*` matches by prefix. A claim that is a list matches if any of its strings does. Only
 * strings match: a number or a boolean never equals a configured string, so a type confusion fails closed.
 *
 * @example claimMatches("refs/heads/main", "refs/heads/main") // true
 * @example claimMatches("refs/heads/main-x", "refs/heads/main") // false
 * @example claimMatches("refs/tags/v1.2", ["refs/heads/main", "refs/tags/v*"]) // true
 */
export function claimMatches(actual: unknown, expected: string | string[]): boolean {
  const wanted = Array.isArray(expected) ? expected : [expected];
  const values = Array.isArray(actual) ? actual : [actual];
  return values.some(
    (v) => typeof v === "string" && wanted.some((w) => (w.endsWith("*") ? v.startsWith(w.slice(0, -1)) : v === w)),
  );
}

/** True when every listed claim matches. */
export function claimsMatch(claims: Record<string, unknown>, expected: Record<string, string | string[]>): boolean {
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
