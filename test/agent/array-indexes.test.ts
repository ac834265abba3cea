import { describe, expect, it } from "vitest";
import { expandArrayIndexes } from "../../agent/array-indexes.ts";

describe("array index expressions", () => {
  it.each([
    ["0-3", [0, 1, 2, 3]],
    ["0-6:3,9", [0, 3, 6, 9]],
    ["1,3,5-7", [1, 3, 5, 6, 7]],
    ["7", [7]],
  ])("%s", (expression, tasks) => {
    expect(expandArrayIndexes(expression)).toEqual(tasks);
  });

  it("stops at the limit", () => {
    expect(expandArrayIndexes("0-999999", 5)).toEqual([0, 1, 2, 3, 4]);
  });
});
