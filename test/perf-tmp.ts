import { createWorld } from "./gateway/world.ts";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
const url = `file:${join(mkdtempSync(join(tmpdir(), "sgp-")), "a.db")}`;
const w = await createWorld({ SLURMGATE_MAX_QUEUED_PER_USER: "100000", SLURMGATE_BODY_LIMIT_BYTES: "67108864" }, undefined, url);
for (let round = 0; round < 4; round++) {
  const t0 = performance.now();
  const res = await w.call<any>("POST", "/v1/sweeps", w.tokens.alice, {
    base: { name: "train", cluster: "alpha", command: ["python", "t.py", "--lr={LR}", "--seed={SEED}"], labels: { project: "x" } },
    grid: { LR: Array.from({ length: 100 }, (_, i) => i / 1000), SEED: Array.from({ length: 100 }, (_, i) => i) },
  });
  console.log("grid", res.status, res.body.total, Math.round(performance.now() - t0), "ms");
}
