/**
 * One lexical rule for paths inside a job's directory: inputs, output globs and browsing all refuse
 * the same hostile paths for the same reason, and the rule lists every violation at once.
 */
import { describe, expect, it } from "vitest";
import { browsePathProblems } from "../../schemas/browse.ts";
import { jobPathFault, jobPathProblems } from "../../schemas/files.ts";
import { outputGlobProblem } from "../../schemas/outputs.ts";

const HOSTILE = ["../x", "a/../../x", "/etc/passwd", "a\u0000b", "a\nb", "a//b", "./a", "a\\..\\b", "x".repeat(1_025)];

describe("the job-path rule", () => {
  it.each(HOSTILE)("refuses %j alike for inputs, outputs and browsing", (path) => {
    const fault = jobPathFault(path);
    expect(fault).toBeDefined();
    expect(outputGlobProblem(path)).toBe(fault);
    if (path !== "./a") {
      expect(browsePathProblems(path)).toEqual(jobPathProblems(path));
    }
  });

  it("lists every violation of one path", () => {
    const problems = jobPathProblems(`/${"a".repeat(300)}/../x\u0000y\\z`);
    expect(problems.join(" | ")).toMatch(/NUL.*backslash.*absolute.*'\.\.'.*255 bytes/);
  });

  it("lets browsing name the job directory, a leading './' and a trailing slash, nothing else", () => {
    for (const path of ["", ".", "./", "./a", "results/", "results/a.json"]) {
      expect(browsePathProblems(path)).toEqual([]);
    }
    expect(jobPathFault("")).toBe("is empty");
    expect(jobPathFault("results/")).toBe("has an empty or '.' component");
    expect(outputGlobProblem("results/**/*.json")).toBeUndefined();
  });
});
