export * from "./patterns.ts";
export * from "./sbatch.ts";
export * from "./roots.ts";
export * from "./job.ts";
export * from "./agent.ts";
export * from "./cluster.ts";
export * from "./admin.ts";
export * from "./problem.ts";
