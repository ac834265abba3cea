/**
 * Every job runs as its own user, on real Slurm: a site agent as root submits Alice's and Bob's jobs
 * as their own accounts; personal agents run unprivileged under sg-alice and sg-bob and never take
 * each other's jobs; refusals and a compromised gateway (rows written straight into its database)
 * never reach sbatch.
 */
import { chmodSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createToken } from "../../gateway/store/tokens.ts";
import { isTerminal } from "../../schemas/index.ts";
import { type E2E, slurm, startE2E } from "./harness.ts";
import { type PosixUser, type UserAgent, ensurePosixUser, spawnAgentAs } from "./posix-users.ts";
import { varTmpDir } from "../helpers/var-tmp.ts";

let e2e: E2E;
let alice: PosixUser;
let bob: PosixUser;
const tokens: Record<string, string> = {};

/** Slurm jobs carrying this job's tag, whoever they belong to. */
function slurmJobsTagged(jobId: string, cluster: "alpha" | "beta" = "alpha"): string[] {
  const queue = slurm(cluster, "squeue", ["-h", "--states=all", "-o", "%i|%k"]);
  const acct = slurm(cluster, "sacct", [
    "-X",
    "-P",
    "-n",
    "--allusers",
    "-o",
    "JobID,Comment",
    "--starttime=now-2hours",
  ]);
  return `${queue}\n${acct}`.split("\n").filter((line) => line.includes(`slurmgate:${jobId}:`));
}

const RESULT = `printf '{"uid":%s,"gid":%s}' "$(id -u)" "$(id -g)" > "$SLURMGATE_RESULT"`;

beforeAll(async () => {
  alice = ensurePosixUser("sg-alice");
  bob = ensurePosixUser("sg-bob");
  e2e = await startE2E();
  for (const name of ["rooty", "sys", "ghost", "carol"]) {
    tokens[name] = await e2e.gw.user(name);
    await e2e.gw.grant(name, "alpha");
  }
}, 120_000);

afterAll(async () => {
  await e2e?.close();
});

async function stateOf(id: string) {
  return (await e2e.job(e2e.admin, id)) as unknown as {
    state: string;
    code: string | null;
    reason: string | null;
    result: unknown;
    events: { detail?: string; actor: string; state?: string }[];
  };
}

describe("a site agent as root", () => {
  let root: string;
  beforeAll(async () => {
    root = varTmpDir("sg-identity-site-");
    chmodSync(root, 0o755);
    const map = join(root, "..", `${root.split("/").pop()}.map.json`);
    writeFileSync(
      map,
      JSON.stringify({
        minUid: 1000,
        users: { alice: "sg-alice", bob: "sg-bob", rooty: "root", sys: "daemon", ghost: "sg-nobody-here" },
      }),
      { mode: 0o644 },
    );
    e2e.startAgent("alpha", { SLURMGATE_USER_MAP: map, SLURMGATE_SHARED_ROOTS: root });
    await e2e.waitClustersAlive(120_000, ["alpha"]);
  }, 150_000);

  it("runs Alice's and Bob's jobs as their own uids, in 0700 directories only they can read", async () => {
    const a = await e2e.submit(e2e.alice, { name: "as-alice", cluster: "alpha", script: RESULT });
    const aDone = await e2e.waitTerminal(e2e.alice, a.id, 180_000);
    expect(aDone.state).toBe("completed");
    expect(aDone.result).toEqual({ uid: alice.uid, gid: alice.gid });
    const aDir = join(root, "alice", a.id);
    const info = statSync(aDir);
    expect([info.uid, info.gid, info.mode & 0o777]).toEqual([alice.uid, alice.gid, 0o700]);
    expect(statSync(join(root, "alice")).uid).toBe(0);
    // Accounting settles after the job ends (seen: "root" for a moment, then the job's own user).
    const accountedUser = () =>
      slurm("alpha", "sacct", ["-j", aDone.slurmJobId!, "-X", "-n", "-P", "-o", "User,UID"]).trim();
    await expect.poll(accountedUser, { timeout: 30_000, interval: 1_000 }).toBe(`sg-alice|${alice.uid}`);
    const events = (await stateOf(a.id)).events.map((e) => e.detail ?? "").join("\n");
    expect(events).toContain(`as sg-alice (uid ${alice.uid}, gid ${alice.gid})`);

    const b = await e2e.submit(e2e.bob, {
      name: "peek",
      cluster: "alpha",
      script: `peek=$(ls ${aDir} 2>&1 | head -c 200 | tr -d '"\\\\\n'); printf '{"uid":%s,"peek":"%s"}' "$(id -u)" "$peek" > "$SLURMGATE_RESULT"`,
    });
    const bDone = await e2e.waitTerminal(e2e.bob, b.id, 180_000);
    expect(bDone.state).toBe("completed");
    const result = bDone.result as { uid: number; peek: string };
    expect(result.uid).toBe(bob.uid);
    expect(result.peek).toContain("Permission denied");
  }, 400_000);

  it.each([
    ["rooty", "owner_privileged_account"],
    ["sys", "owner_privileged_account"],
    ["ghost", "owner_unknown_account"],
  ])(
    "refuses %s's job with %s and never calls sbatch",
    async (user, code) => {
      const job = await e2e.submit(tokens[user]!, { name: "refused", cluster: "alpha", command: ["id"] });
      const done = await e2e.waitTerminal(tokens[user]!, job.id, 120_000);
      expect([done.state, (done as unknown as { code: string }).code]).toEqual(["rejected", code]);
      expect(slurmJobsTagged(job.id)).toEqual([]);
    },
    200_000,
  );

  it("a compromised gateway that hands it an unmapped user's job gets a refusal, not a submission", async () => {
    const seed = await e2e.submit(e2e.alice, { name: "seed", cluster: "alpha", command: ["true"] });
    await e2e.waitTerminal(e2e.alice, seed.id, 180_000);
    // The database now says carol's job is queued and that this agent maps carol.
    await e2e.gw.db.client.execute(
      `INSERT INTO jobs (id, owner, name, state, cluster, spec, created_at, updated_at)
       SELECT 'job_forgedcarol0000000000000', 'carol', name, 'queued', cluster, spec, created_at, updated_at
       FROM jobs WHERE id = '${seed.id}'`,
    );
    await e2e.gw.db.client.execute(`UPDATE agents SET serves = '["alice","bob","carol"]' WHERE serves IS NOT NULL`);
    const done = await e2e.waitFor(e2e.admin, "job_forgedcarol0000000000000", (j) => j.state === "rejected", 120_000);
    expect((done as unknown as { code: string }).code).toBe("owner_not_mapped");
    expect(slurmJobsTagged("job_forgedcarol0000000000000")).toEqual([]);
  }, 400_000);
});

describe("personal agents, unprivileged, as sg-alice and sg-bob", () => {
  let root: string;
  const agents: { user: string; agent: UserAgent }[] = [];
  const personalTokens: Record<string, string> = {};
  const outputOf = (user: string) => agents.find((a) => a.user === user)?.agent.logs() ?? "";

  /** The agent process under the user's own account, its state file in the user's home. */
  const startPersonal = (user: "alice" | "bob", posix: PosixUser) => {
    const env = e2e.agentEnv("beta", {
      SLURMGATE_AGENT_TOKEN: personalTokens[user]!,
      SLURMGATE_SHARED_ROOTS: root,
      SLURMGATE_STATE_FILE: `/home/${posix.name}/agent-beta-${Date.now()}.json`,
    });
    agents.push({ user, agent: spawnAgentAs(posix, env) });
  };

  const agentSeen = async (user: string) => {
    for (let i = 0; i < 600; i++) {
      const rs = await e2e.gw.db.client.execute({
        sql: "SELECT count(*) AS n FROM agents WHERE cluster = 'beta' AND user = ?",
        args: [user],
      });
      if (Number(rs.rows[0]?.n) > 0) {
        return;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`${user}'s agent never came up:\n${outputOf(user)}`);
  };

  beforeAll(async () => {
    root = varTmpDir("sg-identity-personal-");
    chmodSync(root, 0o1777);
    for (const user of ["alice", "bob"]) {
      personalTokens[user] = (
        await createToken(e2e.gw.db, { kind: "agent", cluster: "beta", user }, e2e.gw.deps.now())
      ).token;
    }
    startPersonal("alice", alice);
    startPersonal("bob", bob);
    await Promise.all([agentSeen("alice"), agentSeen("bob")]);
  }, 200_000);

  afterAll(async () => {
    await Promise.all(agents.map(({ agent }) => agent.stop()));
  });

  it("never gives Bob's agent Alice's job across 200 interleaved submissions; each runs as its owner", async () => {
    // All N reach Slurm through both agents polling at once; Slurm's own User column must be the owner for
    // every one. Beta's node runs 2 jobs at a time, so only the first COMPLETE run to their end (their
    // payload reports its uid/gid); the rest are cancelled once Slurm holds them (247 s for 200 otherwise).
    const N = Number(process.env.IDENTITY_E2E_JOBS ?? 200);
    const COMPLETE = Math.min(N, 20);
    const jobs: { id: string; owner: "alice" | "bob" }[] = [];
    for (let i = 0; i < N; i++) {
      const owner = (i * 7) % 3 === 0 ? "bob" : "alice";
      const job = await e2e.submit(owner === "alice" ? e2e.alice : e2e.bob, {
        name: "mine",
        cluster: "beta",
        script: i < COMPLETE ? RESULT : `${RESULT}; sleep 600`,
      });
      jobs.push({ id: job.id, owner });
    }
    const token = (owner: "alice" | "bob") => (owner === "alice" ? e2e.alice : e2e.bob);
    const slurmIds = new Map<string, string>();
    for (const { id, owner } of jobs) {
      const inSlurm = await e2e.waitFor(
        token(owner),
        id,
        (job) => job.slurmJobId !== null || isTerminal(job.state),
        300_000,
      );
      expect([id, inSlurm.slurmJobId === null ? inSlurm.state : "in slurm"]).toEqual([id, "in slurm"]);
      slurmIds.set(id, inSlurm.slurmJobId!);
    }
    const users = new Map(
      slurm("beta", "squeue", ["-h", "-t", "all", "-o", "%i|%u", "-j", [...slurmIds.values()].join(",")])
        .trim()
        .split("\n")
        .map((line) => line.split("|") as [string, string]),
    );
    for (const { id, owner } of jobs) {
      const posix = owner === "alice" ? alice : bob;
      expect([id, users.get(slurmIds.get(id)!)]).toEqual([id, posix.name]);
    }
    for (const { id, owner } of jobs.slice(COMPLETE)) {
      await fetch(`${e2e.url}/v1/jobs/${id}/cancel`, {
        method: "POST",
        headers: { authorization: `Bearer ${token(owner)}` },
      });
    }
    for (const [i, { id, owner }] of jobs.entries()) {
      const done = await e2e.waitTerminal(token(owner), id, 300_000);
      const posix = owner === "alice" ? alice : bob;
      if (i < COMPLETE) {
        expect([id, done.state, done.result]).toEqual([id, "completed", { uid: posix.uid, gid: posix.gid }]);
      } else {
        expect([id, done.state]).toEqual([id, "cancelled"]);
      }
    }
    const strays = await e2e.gw.db.client.execute(
      `SELECT e.job_id, e.actor, j.owner FROM job_events e JOIN jobs j ON j.id = e.job_id
       WHERE j.cluster = 'beta' AND e.actor LIKE 'agent:%' AND e.actor NOT LIKE 'agent:beta/' || j.owner || '@%'`,
    );
    expect(strays.rows).toEqual([]);
    const dir = statSync(join(root, "alice"));
    expect([dir.uid, dir.mode & 0o777]).toEqual([alice.uid, 0o700]);
  }, 900_000);

  it("a compromised gateway cannot make Bob's agent run Alice's job", async () => {
    // Alice's agent stops: her pinned job waits for it instead of going anywhere else.
    await agents[0]!.agent.stop();
    const waiting = await e2e.submit(e2e.alice, { name: "waits", cluster: "beta", command: ["true"] });
    // The database now says Bob's token belongs to no one (any job) and holds a forged job of Alice's.
    await e2e.gw.db.client.execute("UPDATE tokens SET user = NULL WHERE kind = 'agent' AND user = 'bob'");
    await e2e.gw.db.client.execute("UPDATE agents SET user = NULL WHERE user = 'bob'");
    const refused = await e2e.waitFor(e2e.alice, waiting.id, (j) => j.state !== "queued", 120_000);
    const done = await e2e.waitTerminal(e2e.alice, waiting.id, 60_000);
    expect([refused.state, done.state, (done as unknown as { code: string }).code]).toEqual([
      expect.stringMatching(/leased|rejected/),
      "rejected",
      "owner_not_agent_user",
    ]);
    expect(slurmJobsTagged(waiting.id, "beta")).toEqual([]);
  }, 300_000);
});
