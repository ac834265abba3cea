/**
 * Request bodies are strict (`z.strictObject`: an unknown key is refused, never silently dropped)
 * and a refusal lists every fault at once. zod 4 skips an object's refinements as soon as one of
 * its fields failed with an aborting issue (a wrong type), so a body with a typo and a cross-field
 * fault would take two round trips. Spreading {@link withOtherIssues} into a refinement's params
 * runs it anyway; the refinement must then cope with fields of the wrong type (it only compares
 * presence), and it is skipped only when the value is not an object at all (that is its own error).
 */

/** @example z.strictObject({...}).refine(check, { message, path, ...withOtherIssues }) */
export const withOtherIssues = {
  when: (payload: { value: unknown }) =>
    typeof payload.value === "object" && payload.value !== null && !Array.isArray(payload.value),
};
