/**
 * Expands a Slurm array index expression (`0-99:2`, `1,3,5-7`; already pattern-checked) into the
 * task ids, up to `limit` of them.
 * @example expandArrayIndexes("0-6:3,9") // => [0, 3, 6, 9]
 */
export function expandArrayIndexes(expression: string, limit = 1_000): number[] {
  const out: number[] = [];
  for (const part of expression.split(",")) {
    const [range = "", stepText] = part.split(":");
    const [fromText = "", toText] = range.split("-");
    const from = Number(fromText);
    const to = toText === undefined ? from : Number(toText);
    const step = stepText === undefined ? 1 : Math.max(1, Number(stepText));
    for (let i = from; i <= to && out.length < limit; i += step) {
      out.push(i);
    }
  }
  return out;
}

/**
 * How many distinct tasks an index expression (already pattern-checked) makes, as Slurm counts
 * them: an index given twice is one task. Counts without listing them.
 * @example arrayTaskCount("0-9,5-14:5") // => 11
 */
export function arrayTaskCount(expression: string): number {
  const parts = expression.split(",").map((part) => {
    const [range = "", stepText] = part.split(":");
    const [fromText = "", toText] = range.split("-");
    const from = Number(fromText);
    return { from, to: toText === undefined ? from : Number(toText), step: Math.max(1, Number(stepText ?? 1)) };
  });
  const seen = new Uint8Array(Math.max(0, ...parts.map((p) => p.to)) + 1);
  let count = 0;
  for (const { from, to, step } of parts) {
    for (let i = from; i <= to; i += step) {
      count += seen[i] ? 0 : 1;
      seen[i] = 1;
    }
  }
  return count;
}
