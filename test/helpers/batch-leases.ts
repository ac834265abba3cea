/**
 * Leases of one sweep batch as the gateway hands them out (one array for the agent's submitBatch):
 * `n` plain `true` jobs held back an hour, element i with env I=i.
 */
import { randomBytes } from "node:crypto";
import type { Lease } from "../../agent/gateway-api.ts";
import { JobSpec } from "../../schemas/job.ts";

export function batchLeases(
  n: number,
  options: { name: string; maxParallel?: number | null; spec?: Record<string, unknown> },
): Lease[] {
  const batch = `bat_${randomBytes(12).toString("hex")}`;
  return Array.from({ length: n }, (_, i) => ({
    jobId: `job_${randomBytes(13).toString("hex")}`,
    epoch: 1,
    attempt: 1,
    owner: "alice",
    expiresAt: new Date(Date.now() + 60_000).toISOString(),
    spec: JobSpec.parse({
      name: `${options.name}-${i}`,
      command: ["true"],
      env: { I: String(i) },
      extraSbatchArgs: ["--begin=now+1hour"],
      ...options.spec,
    }),
    slurmJobId: null,
    dependsOnSlurmIds: [],
    batch: { id: batch, index: i, size: n, maxParallel: options.maxParallel ?? null },
  }));
}
