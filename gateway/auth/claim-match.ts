/**
 * The one claim-matching rule of gateway/auth/oidc-config.ts (`requiredClaims`, trust policy `match`):
 * the token's claim must equal the expected value or one of the expected values; an expected value
 * ending in `*` matches by prefix. A claim that is a list matches if any of its strings does.
 */
export function claimMatches(actual: unknown, expected: string | string[]): boolean {
  const wanted = Array.isArray(expected) ? expected : [expected];
  const values = Array.isArray(actual) ? actual : [actual];
  return values.some(
    (v) => typeof v === "string" && wanted.some((w) => (w.endsWith("*") ? v.startsWith(w.slice(0, -1)) : v === w)),
  );
}
