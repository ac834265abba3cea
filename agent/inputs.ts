/**
 * A job's inputs (spec.inputs): downloaded from the gateway, checked against their sha-256, and
 * written inside the job directory before sbatch. The path is checked lexically again (the same
 * rule as the gateway's), then each parent is created one component at a time without following a
 * symlink, and a symlink at the file's own place is removed, never written through.
 */
import { createHash } from "node:crypto";
import { type JobInput, jobPathFault, refHex } from "../schemas/files.ts";
import type { AgentContext } from "./context.ts";
import type { Executor } from "./executor/types.ts";
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
 * Writes every input into `jobDir` as `executor` (the job's user under sudo). Throws InputRefusal
 * (missing or corrupt), PathError (a path the job directory cannot hold) or InputUnreachable.
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
    const actual = createHash("sha256").update(got.value).digest("hex");
    if (actual !== refHex(input.file)) {
      throw new InputRefusal(
        "input_corrupt",
        `inputs.${i} (${input.path}): the bytes received hash to sha256:${actual}, not ${input.file}; the stored file is damaged`,
      );
    }
    const segments = input.path.split("/");
    const name = segments.pop()!;
    const dir = await makeParents(executor, jobDir, segments, field);
    const target = `${dir}/${name}`;
    const there = await executor.stat(target);
    if (there?.isDirectory && !there.isSymbolicLink) {
      throw new PathError(field, `${input.path} is a directory in the job directory`);
    }
    if (there) {
      // A symlink (or an earlier attempt's file) goes; rm removes the link itself, never its target.
      await executor.rm(target);
    }
    await executor.writeFile(target, got.value, input.mode ? Number.parseInt(input.mode, 8) : 0o644);
  }
}
