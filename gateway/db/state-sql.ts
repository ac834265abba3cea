/**
 * The state lists SQL needs, derived from the one list in schemas/job.ts. The partial indexes in
 * schema.ts and the queries that must use them share these exact strings: SQLite uses a partial
 * index only when the query repeats the index's WHERE term word for word.
 */
import { LIVE_STATES } from "../../schemas/index.ts";

const list = (states: readonly string[]) => `(${states.map((s) => `'${s}'`).join(",")})`;

/** `('queued','leased','submitted','pending','running')` */
export const LIVE_STATES_SQL = list(LIVE_STATES);

/** The live states an agent holds a lease in: `('leased','submitted','pending','running')`. */
export const HELD_STATES_SQL = list(LIVE_STATES.filter((s) => s !== "queued"));
