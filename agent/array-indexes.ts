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
