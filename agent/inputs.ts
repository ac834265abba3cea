/**
 * A job's inputs (spec.inputs): streamed from the gateway into a temp file inside the job
 * directory, hashed on the way, and renamed into place only when the sha-256 matches, before sbatch. The path is checked lexically again (the same
 * rule as the gateway's), then each parent is created one component at a time without following a
 * symlink, and a symlink at the file's own place is removed, never written through.
 */
import { createHash } from "node:crypto";
import { type JobInput, jobPathFault, refHex } from "../schemas/files.ts";
import type { AgentContext } from "./context.ts";
import type { Executor } from "./executor/types.ts";
import { DownloadCut } from "./gateway-api.ts";
import { PathError } from "./paths.ts";

/** Why an input cannot be used; `code` is the job's rejection code. */
export class InputRefusal extends Error {
  readonly code: "input_missing" | "input_corrupt";
  constructor(code: "input_missing" | "input_corrupt", message: string) {
    super(message);
    this.code = code;
  }
}

/** The gateway could not be asked now: the lease goes back and is tried again. */
export class InputUnreachable extends Error {}

/** Makes `dir/segments…` as directories, refusing any existing component that is not a plain directory. */
async function makeParents(executor: Executor, jobDir: string, segments: string[], field: string): Promise<string> {
  let dir = jobDir;
  for (const segment of segments) {
    dir = `${dir}/${segment}`;
    let created: boolean;
    try {
      created = await executor.mkdirNoFollow(dir, 0o700);
    } catch (err) {
      throw new PathError(field, `cannot create ${segment}/ in the job directory: ${(err as Error).message}`);
    }
    if (!created) {
      const info = await executor.stat(dir);
      if (!info?.isDirectory || info.isSymbolicLink) {
        throw new PathError(field, `${dir} exists and is not a plain directory (a symlink is never followed)`);
      }
    }
  }
  return dir;
}

/**
 * Writes every input into `jobDir` as `executor` (the job's user under sudo), streamed: no input is
 * ever held whole. Throws InputRefusal (missing or corrupt), PathError (a path the job directory
 * cannot hold) or InputUnreachable (the gateway or the download failed: the lease goes back).
 */
export async function writeInputs(
  ctx: Pick<AgentContext, "api" | "agentId">,
  executor: Executor,
  jobDir: string,
  inputs: readonly JobInput[],
): Promise<void> {
  for (const [i, input] of inputs.entries()) {
    const field = `inputs.${i}.path`;
    const fault = jobPathFault(input.path);
    if (fault) {
      throw new PathError(field, fault);
    }
    const got = await ctx.api.file(input.file, ctx.agentId);
    if (!got.ok) {
      if (got.status === 404) {
        throw new InputRefusal(
          "input_missing",
          `inputs.${i} (${input.path}): ${input.file} is not available from the gateway: ${got.message}`,
        );
      }
      throw new InputUnreachable(`inputs.${i}: cannot download ${input.file}: ${got.message}`);
    }
    const body = got.value;
    let target: string;
    try {
      const segments = input.path.split("/");
      const name = segments.pop()!;
      const dir = await makeParents(executor, jobDir, segments, field);
      target = `${dir}/${name}`;
      const there = await executor.stat(target);
      if (there?.isDirectory && !there.isSymbolicLink) {
        throw new PathError(field, `${input.path} is a directory in the job directory`);
      }
      if (there) {
        // A symlink (or an earlier attempt's file) goes; rm removes the link itself, never its target.
        await executor.rm(target);
      }
    } catch (err) {
      await closeBody(body);
      throw err;
    }
    // The executor renames its temp file into place only once this body has ended without
    // throwing: a cut download or bytes that hash to something else leave nothing at `target`.
    await executor.writeFileStream(
      target,
      verified(body, refHex(input.file), `inputs.${i} (${input.path})`, input.file),
      input.mode ? Number.parseInt(input.mode, 8) : 0o644,
    );
  }
}

/** Lets go of a download not read (its connection goes back to the pool). */
async function closeBody(body: AsyncIterable<Uint8Array>): Promise<void> {
  await body[Symbol.asyncIterator]().return?.();
}

/** Passes `body` through while hashing it; throws at its end when the hash is not `hex`. */
async function* verified(
  body: AsyncIterable<Uint8Array>,
  hex: string,
  what: string,
  ref: string,
): AsyncIterable<Uint8Array> {
  const hash = createHash("sha256");
  try {
    for await (const chunk of body) {
      hash.update(chunk);
      yield chunk;
    }
  } catch (err) {
    if (err instanceof DownloadCut) {
      throw new InputUnreachable(`${what}: cannot download ${ref}: ${err.message}`);
    }
    throw err;
  }
  const actual = hash.digest("hex");
  if (actual !== hex) {
    throw new InputRefusal(
      "input_corrupt",
      `${what}: the bytes received hash to sha256:${actual}, not ${ref}; the stored file is damaged`,
    );
  }
}
