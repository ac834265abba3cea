export * from "./patterns.ts";
export * from "./job.ts";
export * from "./agent.ts";
export * from "./cluster.ts";
export * from "./admin.ts";
export * from "./identity.ts";
export * from "./problem.ts";
