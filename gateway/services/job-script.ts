/**
 * A job's rendered batch script for whoever may read the job: its head and shared body joined
 * (store/script-bodies.ts), never a part presented as the whole.
 */
import type { Deps, Principal } from "../deps.ts";
import { ApiProblem } from "../problem.ts";
import { readJobScript } from "../store/script-bodies.ts";
import { visibleJob } from "./jobs.ts";

export async function readVisibleScript(deps: Deps, principal: Principal, id: string): Promise<string> {
  const job = await visibleJob(deps, principal, id);
  const stored = await readJobScript(deps.db, job.id);
  switch (stored.kind) {
    case "none":
      throw new ApiProblem("not_found", `job ${id} has no script yet: its agent has not reported it submitted`);
    case "missing_body":
      throw new ApiProblem(
        "internal",
        `job ${id}'s stored script is incomplete: the body it names (sha256 ${stored.sha256}) is missing from the database`,
      );
    case "whole":
      return stored.script;
  }
}
