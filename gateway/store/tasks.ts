/**
 * An array job's tasks as its agent last reported them (the `tasks` JSON column of `jobs`).
 */
import type { Job, JobTask, JobTasks } from "../../schemas/index.ts";
import { JobTask as JobTaskSchema } from "../../schemas/index.ts";
import type { Database } from "../db/client.ts";

/** The stored tasks of a job the caller may see; a corrupt column reads as no tasks, never as a 500. */
export async function readJobTasks(db: Database, job: Job): Promise<JobTasks> {
  const rs = await db.client.execute({ sql: "SELECT tasks FROM jobs WHERE id = ?", args: [job.id] });
  const raw = rs.rows[0]?.tasks;
  let items: JobTask[] = [];
  if (typeof raw === "string") {
    try {
      const parsed = JobTaskSchema.array().safeParse(JSON.parse(raw));
      items = parsed.success ? parsed.data : [];
    } catch {
      items = [];
    }
  }
  const counts: Record<string, number> = {};
  for (const task of items) {
    counts[task.state] = (counts[task.state] ?? 0) + 1;
  }
  return { jobId: job.id, state: job.state, indexes: job.spec?.array?.indexes ?? null, counts, items };
}
