import { describe, expect, it } from "vitest";
import { checkedJobSpec, parseJobSpec } from "../../agent/render/parse-spec.ts";
import { JobSpec } from "../../schemas/job.ts";

describe("a lease's spec, validated once", () => {
  const raw = { name: "train", command: ["python", "train.py"], env: { LR: "0.1" }, labels: { team: "nlp" } };

  it("gives what JobSpec gives, and the same object to every later reader of the raw or the parsed spec", () => {
    const first = parseJobSpec(raw);
    expect(first.success).toBe(true);
    expect(first.data).toEqual(JobSpec.parse(raw));
    expect(parseJobSpec(raw).data).toBe(first.data);
    expect(parseJobSpec(first.data).data).toBe(first.data);
    expect(checkedJobSpec(raw)).toBe(first.data);
  });

  it("never remembers a refusal: an invalid spec is refused every time with its field, and throws when it was assumed checked", () => {
    const bad = { command: ["true"], unknownField: 1, nodes: -1 };
    for (let i = 0; i < 2; i++) {
      const parsed = parseJobSpec(bad);
      expect(parsed.success).toBe(false);
      expect(parsed.error?.issues.map((issue) => issue.path.join(".") || issue.message).join(" ")).toMatch(/nodes/);
    }
    expect(() => checkedJobSpec(bad)).toThrow();
    for (const hostile of [null, "a string", 42, undefined, []]) {
      expect(parseJobSpec(hostile).success).toBe(false);
    }
  });
});
