import { describe, expect, it } from "vitest";
import { buildSacctmgrAssocArgs, parseSacctmgrAssoc } from "../../agent/slurm/sacctmgr.ts";

describe("buildSacctmgrAssocArgs", () => {
  it("asks for one user's accounts on one cluster, parsable and without header", () => {
    expect(buildSacctmgrAssocArgs("sg-alice", "alpha")).toEqual([
      "-n",
      "-P",
      "show",
      "assoc",
      "user=sg-alice",
      "cluster=alpha",
      "format=account",
    ]);
  });
  it("refuses names that would change the query", () => {
    for (const [user, cluster] of [
      ["", "alpha"],
      ["alice cluster=beta", "alpha"],
      ["alice", "alpha where"],
      ["-alice", "alpha"],
      ["alice\n", "alpha"],
      ["alice", ""],
      ["a".repeat(40), "alpha"],
    ] as const) {
      expect(() => buildSacctmgrAssocArgs(user, cluster), `${user}/${cluster}`).toThrow();
    }
  });
});

describe("parseSacctmgrAssoc", () => {
  const ok = (stdout: string) => parseSacctmgrAssoc({ code: 0, stdout, stderr: "" });
  it("lists distinct accounts, lower-cased, sorted", () => {
    expect(ok("default\nLab-A\ndefault\r\nlab-a|\n\n")).toEqual({ ok: true, value: ["default", "lab-a"] });
  });
  it("an unknown user or no association is an empty list, not a failure", () => {
    expect(ok("")).toEqual({ ok: true, value: [] });
  });
  it("a failure or an unexpected line is not an answer", () => {
    const down = parseSacctmgrAssoc({
      code: 1,
      stdout: "",
      stderr: "sacctmgr: error: Problem talking to the database: Connection refused\n",
    });
    expect(down).toEqual({
      ok: false,
      retryable: true,
      code: "failed",
      message: expect.stringMatching(/Connection refused/),
    });
    expect(parseSacctmgrAssoc({ code: null, stdout: "default\n", stderr: "" }).ok).toBe(false);
    expect(ok("default\nsacctmgr: warning: something odd\n").ok).toBe(false);
    expect(ok("alpha|default|root\n").ok).toBe(false);
  });
});
