/** Reads a captured Slurm output from test/fixtures/slurm (real outputs of Slurm 22.05.8). */
import { readFileSync } from "node:fs";

export function fixture(name: string): string {
  return readFileSync(new URL(`../../fixtures/slurm/${name}`, import.meta.url), "utf8");
}
