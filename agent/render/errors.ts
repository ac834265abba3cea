/**
 * The one error the renderer throws: a value it will not put into a batch script.
 */
import type { RejectCode } from "../../schemas/agent.ts";

/**
 * A refusal to render, with the stable code the agent reports to the gateway
 * (`Report.code`) and a message that names the field.
 */
export class RenderError extends Error {
  override readonly name = "RenderError";
  readonly code: RejectCode;
  /** Dotted path of the offending field in the job spec or render input, when there is one. */
  readonly field: string | undefined;

  constructor(code: RejectCode, message: string, field?: string) {
    super(message);
    this.code = code;
    this.field = field;
  }
}

/** Throws a RenderError unless `pattern` matches `value`; returns the value for chaining. */
export function requireMatch(value: string, pattern: RegExp, field: string, code: RejectCode = "invalid_spec"): string {
  if (!pattern.test(value)) {
    throw new RenderError(code, `${field}: value does not match ${pattern}`, field);
  }
  return value;
}
