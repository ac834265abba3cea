/**
 * Report requests that carry the wrapper's fixed body once (`scriptBodies`) and each script as its
 * head (`script` + `scriptBody`): stored once, read back whole by GET /v1/jobs/{id}/script; every
 * inconsistent request refused naming the field; an old agent's whole script kept as it was.
 */
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { wrapperBody } from "../../agent/render/template.ts";
import { type World, createWorld, expectProblemShape } from "./world.ts";

const sha = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");
const BODY = wrapperBody().text;
const HASH = sha(BODY);
/** A head like the renderer's, with characters that must survive byte for byte. */
const head = (id: string) => `#!/bin/bash\n#SBATCH --job-name=${id}\n# é ✓ \t 🚀\nsg_job_id='${id}'\n`;

async function leasedJobs(w: World, n: number) {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    ids.push((await w.submit(w.tokens.alice, { cluster: "alpha" })).id);
  }
  const epochs = new Map<string, number>();
  while (epochs.size < n) {
    const leases = (await w.lease(w.tokens.alphaAgent, "agent-1", { max: 100, holding: [...epochs.keys()] })).body
      .leases;
    expect(leases.length).toBeGreaterThan(0);
    for (const lease of leases) {
      epochs.set(lease.jobId, lease.epoch);
    }
  }
  return ids.map((id) => ({ id, epoch: epochs.get(id) as number }));
}

const post = (w: World, body: Record<string, unknown>) =>
  w.call("POST", "/v1/agent/reports", w.tokens.alphaAgent, body);
const script = (w: World, id: string, token = w.tokens.alice) => w.request("GET", `/v1/jobs/${id}/script`, { token });
const bodyRows = async (w: World) =>
  Number((await w.db.client.execute("SELECT count(*) AS n FROM script_bodies")).rows[0]?.n);

describe("script bodies in agent reports", () => {
  it("stores one body for 100 split reports and gives back each script exactly", async () => {
    const w = await createWorld();
    const jobs = await leasedJobs(w, 100);
    const reports = jobs.map(({ id, epoch }, i) => ({
      jobId: id,
      epoch,
      state: "submitted",
      slurmJobId: String(1000 + i),
      script: head(id),
      scriptBody: HASH,
    }));
    const res = await post(w, { agentId: "agent-1", reports, scriptBodies: { [HASH]: BODY } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect((res.body.outcomes as { status: string }[]).every((o) => o.status === "applied")).toBe(true);
    expect(await bodyRows(w)).toBe(1);
    const stored = await w.db.client.execute("SELECT max(length(script)) AS head FROM jobs WHERE script_body = ?", [
      HASH,
    ]);
    expect(Number(stored.rows[0]?.head)).toBeLessThan(200);
    for (const { id } of jobs) {
      const got = await script(w, id);
      expect(got.status).toBe(200);
      expect(got.headers.get("content-type")).toBe("text/plain; charset=utf-8");
      expect(await got.text()).toBe(head(id) + BODY);
    }
  });

  it("keeps an older agent's whole script as it was, and a later split report replaces it", async () => {
    const w = await createWorld();
    const [job] = await leasedJobs(w, 1);
    const { id, epoch } = job!;
    const whole = `${head(id)}echo whole\n`;
    const res = await post(w, { reports: [{ jobId: id, epoch, state: "submitted", slurmJobId: "7", script: whole }] });
    expect((res.body.outcomes as { status: string }[])[0]?.status).toBe("applied");
    expect(await (await script(w, id)).text()).toBe(whole);
    expect(await bodyRows(w)).toBe(0);
    // The same state again with a split script is a new fact (a resent report after an agent upgrade).
    const again = await post(w, {
      reports: [{ jobId: id, epoch, state: "submitted", script: head(id), scriptBody: HASH }],
      scriptBodies: { [HASH]: BODY },
    });
    expect((again.body.outcomes as { status: string }[])[0]?.status).toBe("applied");
    expect(await (await script(w, id)).text()).toBe(head(id) + BODY);
    // And back: a whole script clears the body reference, it is not head + stale body.
    await post(w, { reports: [{ jobId: id, epoch, state: "submitted", script: whole }] });
    expect(await (await script(w, id)).text()).toBe(whole);
  });

  it("stores the same body once across two requests", async () => {
    const w = await createWorld();
    const [a, b] = await leasedJobs(w, 2);
    for (const job of [a!, b!]) {
      const res = await post(w, {
        reports: [{ jobId: job.id, epoch: job.epoch, state: "submitted", script: head(job.id), scriptBody: HASH }],
        scriptBodies: { [HASH]: BODY },
      });
      expect(res.status).toBe(200);
    }
    expect(await bodyRows(w)).toBe(1);
    expect(await (await script(w, a!.id)).text()).toBe(head(a!.id) + BODY);
    expect(await (await script(w, b!.id)).text()).toBe(head(b!.id) + BODY);
  });

  describe("refuses an inconsistent request whole, naming the field, and changes nothing", () => {
    const cases: [string, (id: string, epoch: number) => Record<string, unknown>, string][] = [
      [
        "a body whose key is not its sha256",
        (id, epoch) => ({
          reports: [{ jobId: id, epoch, state: "submitted", script: head(id), scriptBody: HASH }],
          scriptBodies: { [HASH]: `${BODY}tampered` },
        }),
        `body.scriptBodies.${HASH}`,
      ],
      [
        "a scriptBody the request does not carry",
        (id, epoch) => ({
          reports: [{ jobId: id, epoch, state: "submitted", script: head(id), scriptBody: sha("other") }],
          scriptBodies: { [HASH]: BODY },
        }),
        "body.reports.0.scriptBody",
      ],
      [
        "a scriptBody with no scriptBodies at all",
        (id, epoch) => ({ reports: [{ jobId: id, epoch, state: "submitted", script: head(id), scriptBody: HASH }] }),
        "body.reports.0.scriptBody",
      ],
      [
        "a scriptBody without a script",
        (id, epoch) => ({
          reports: [{ jobId: id, epoch, state: "submitted", scriptBody: HASH }],
          scriptBodies: { [HASH]: BODY },
        }),
        "body.reports.0.scriptBody",
      ],
      [
        "a key in scriptBodies that is not a sha256",
        (id, epoch) => ({
          reports: [{ jobId: id, epoch, state: "submitted", script: head(id), scriptBody: HASH }],
          scriptBodies: { [HASH]: BODY, "../etc/passwd": "x" },
        }),
        "body.scriptBodies.../etc/passwd",
      ],
      [
        "an upper-case hash",
        (id, epoch) => ({
          reports: [{ jobId: id, epoch, state: "submitted", script: head(id), scriptBody: HASH.toUpperCase() }],
          scriptBodies: { [HASH.toUpperCase()]: BODY },
        }),
        "body.reports.0.scriptBody",
      ],
      [
        "more bodies than a request may carry",
        (id, epoch) => ({
          reports: [{ jobId: id, epoch, state: "submitted", script: head(id), scriptBody: HASH }],
          scriptBodies: Object.fromEntries(["a", "b", "c", "d", BODY].map((t) => [sha(t), t])),
        }),
        "body.scriptBodies",
      ],
      [
        "an unknown key beside scriptBodies",
        (id, epoch) => ({
          reports: [{ jobId: id, epoch, state: "submitted", script: head(id), scriptBody: HASH }],
          scriptBodies: { [HASH]: BODY },
          scriptBodyz: {},
        }),
        "body.scriptBodyz",
      ],
    ];
    for (const [name, build, field] of cases) {
      it(name, async () => {
        const w = await createWorld();
        const [job] = await leasedJobs(w, 1);
        const res = await post(w, build(job!.id, job!.epoch));
        const problem = expectProblemShape(res, 422) as { errors?: { field: string }[] };
        expect(problem.errors?.map((e) => e.field)).toContain(field);
        expect((await w.job(job!.id)).state).toBe("leased");
        expect(await bodyRows(w)).toBe(0);
      });
    }
  });

  it("does not keep a body no report names", async () => {
    const w = await createWorld();
    const [job] = await leasedJobs(w, 1);
    const res = await post(w, {
      reports: [{ jobId: job!.id, epoch: job!.epoch, state: "submitted", script: head(job!.id) }],
      scriptBodies: { [HASH]: BODY },
    });
    expect(res.status).toBe(200);
    expect(await bodyRows(w)).toBe(0);
  });
});

describe("GET /v1/jobs/{id}/script", () => {
  it("is 404 before the job is submitted, and 404 for another user's job as for no job", async () => {
    const w = await createWorld();
    const [job] = await leasedJobs(w, 1);
    expectProblemShape(await w.call("GET", `/v1/jobs/${job!.id}/script`, w.tokens.alice), 404);
    await post(w, {
      reports: [{ jobId: job!.id, epoch: job!.epoch, state: "submitted", script: head(job!.id), scriptBody: HASH }],
      scriptBodies: { [HASH]: BODY },
    });
    expect((await script(w, job!.id)).status).toBe(200);
    expect((await script(w, job!.id, w.tokens.admin)).status).toBe(200);
    const bob = await w.call("GET", `/v1/jobs/${job!.id}/script`, w.tokens.bob);
    const none = await w.call("GET", `/v1/jobs/job_${"0".repeat(26)}/script`, w.tokens.bob);
    expectProblemShape(bob, 404);
    expectProblemShape(none, 404);
    expect(JSON.stringify(bob.body).includes("sg_task")).toBe(false);
  });

  it("answers a problem, not a truncated script, when the stored body is missing", async () => {
    const w = await createWorld();
    const [job] = await leasedJobs(w, 1);
    await post(w, {
      reports: [{ jobId: job!.id, epoch: job!.epoch, state: "submitted", script: head(job!.id), scriptBody: HASH }],
      scriptBodies: { [HASH]: BODY },
    });
    await w.db.client.execute("DELETE FROM script_bodies");
    const res = await w.call<{ detail: string }>("GET", `/v1/jobs/${job!.id}/script`, w.tokens.alice);
    const problem = expectProblemShape(res, 500) as unknown as { detail: string; code: string };
    expect(problem.code).toBe("internal");
    expect(problem.detail).toContain(HASH);
    expect(problem.detail).toContain("missing");
  });
});
