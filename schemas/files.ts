/**
 * Files: content-addressed blobs a user uploads (FileRef), the limits on them, and a job's inputs.
 * The gateway and the agent both apply `jobPathProblems` (the agent again, component by component,
 * on the real filesystem); output globs and browsing use the same rule.
 */
import { z } from "@hono/zod-openapi";

/** `sha256:` and 64 lowercase hex digits: the one way the API names a blob. */
export const FILE_REF = /^sha256:[0-9a-f]{64}$/;
/** A bare sha-256 as the blob store keys it. */
export const SHA256_HEX = /^[0-9a-f]{64}$/;

import { FILE_LIMITS } from "./file-limits.ts";

export { FILE_LIMITS };

/** Octal file modes a job input may ask for: permission bits only (no setuid/setgid/sticky). */
export const INPUT_MODE = /^0?[0-7]{3}$/;

/**
 * Every way `path` is not a safe path relative to a job's directory, in words (empty when it is
 * one): the one lexical rule for inputs, outputs and browsing. No leading `/`, no `.`/`..`/empty
 * component, no NUL or other control character, no backslash (a Windows client would mean a
 * separator), and the length caps above. Symlinks are the agent's check, on the real filesystem.
 * @example jobPathProblems("data/train.csv") // => []
 * @example jobPathProblems("/etc/../x") // => ["is absolute: …", "has a '..' component: …"]
 */
export function jobPathProblems(path: string): string[] {
  if (path.length === 0) {
    return ["is empty"];
  }
  const problems: string[] = [];
  if (path.length > FILE_LIMITS.pathChars) {
    problems.push(`is ${path.length} characters long; at most ${FILE_LIMITS.pathChars}`);
  }
  if (path.includes("\u0000")) {
    problems.push("contains a NUL character");
  }
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the rule is exactly that these are refused
  if (/[\u0001-\u001f\u007f]/.test(path)) {
    problems.push("contains a control character");
  }
  if (path.includes("\\")) {
    problems.push("uses a backslash: separate components with '/'");
  }
  if (path.startsWith("/")) {
    problems.push("is absolute: give a path relative to the job directory");
  }
  const segments = path.split("/");
  if (segments.length > FILE_LIMITS.pathDepth) {
    problems.push(`has ${segments.length} components; at most ${FILE_LIMITS.pathDepth}`);
  }
  if (segments.includes("..")) {
    problems.push("has a '..' component: only paths inside the job directory are allowed");
  }
  if (segments.some((segment, i) => segment === "." || (segment === "" && !(i === 0 && path.startsWith("/"))))) {
    problems.push("has an empty or '.' component");
  }
  if (segments.some((segment) => new TextEncoder().encode(segment).length > FILE_LIMITS.segmentChars)) {
    problems.push(`has a component longer than ${FILE_LIMITS.segmentChars} bytes`);
  }
  return problems;
}

/**
 * The first of {@link jobPathProblems}, or undefined when `path` is safe.
 * @example jobPathFault("../x") // => "has a '..' component: only paths inside the job directory are allowed"
 */
export function jobPathFault(path: string): string | undefined {
  return jobPathProblems(path)[0];
}

export const FileRef = z
  .string()
  .regex(FILE_REF, "a file reference: sha256: and 64 lowercase hex digits")
  .openapi("FileRef", { example: `sha256:${"0".repeat(64)}` });
export type FileRef = z.infer<typeof FileRef>;

/** A job-relative path (jobPathFault); shared by inputs and outputs. */
export const JobPath = z
  .string()
  .superRefine((path, ctx) => {
    for (const message of jobPathProblems(path)) {
      ctx.addIssue({ code: "custom", message });
    }
  })
  .openapi({
    description: "Relative to the job directory: no leading '/', no '..', no NUL.",
    example: "data/train.csv",
  });

export const JobInput = z
  .object({
    file: FileRef,
    path: JobPath,
    mode: z
      .string()
      .regex(INPUT_MODE, "an octal permission mode like 0644 or 755")
      .optional()
      .openapi({ description: "Octal permissions of the written file; default 0644.", example: "0644" }),
  })
  .strict()
  .openapi("JobInput");
export type JobInput = z.infer<typeof JobInput>;

/** Inputs of one job: at most FILE_LIMITS.inputsPerJob, no two at one path. */
export const JobInputs = z
  .array(JobInput)
  .max(FILE_LIMITS.inputsPerJob)
  .superRefine((inputs, ctx) => {
    // A path that is another's directory would make one of the two impossible to write.
    const seen = new Map<string, number>();
    inputs.forEach((input, i) => {
      const first = seen.get(input.path);
      if (first !== undefined) {
        ctx.addIssue({ code: "custom", path: [i, "path"], message: `same path as inputs[${first}]` });
        return;
      }
      seen.set(input.path, i);
    });
    inputs.forEach((input, i) => {
      const parts = input.path.split("/");
      for (let n = 1; n < parts.length; n++) {
        const other = seen.get(parts.slice(0, n).join("/"));
        if (other !== undefined) {
          ctx.addIssue({ code: "custom", path: [i, "path"], message: `is inside inputs[${other}], a file` });
          return;
        }
      }
    });
  });

/** What `POST /v1/files` and compose answer. */
export const FileUploaded = z.object({ file: FileRef, size: z.number().int().nonnegative() }).openapi("FileUploaded");
export type FileUploaded = z.infer<typeof FileUploaded>;

export const ComposeRequest = z
  .object({
    parts: z.array(FileRef).min(1).max(FILE_LIMITS.composeParts),
    sha256: FileRef.openapi({ description: "The whole file's reference; the composed bytes must hash to it." }),
  })
  .strict()
  .openapi("ComposeRequest");

/** `sha256:<hex>` → `<hex>`. */
export function refHex(ref: FileRef): string {
  return ref.slice("sha256:".length);
}
