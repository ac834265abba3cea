/**
 * The report request carries the wrapper's fixed body once and each rendered script as its head:
 * every script the renderer makes (single or array, for arbitrary specs) is exactly head + body, so
 * the split is lossless; any other script goes whole; and through the real gateway the script read
 * back is the script rendered.
 */
import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createGatewayApi, type Report } from "../../agent/gateway-api.ts";
import { RenderError } from "../../agent/render/errors.ts";
import { renderArrayScript } from "../../agent/render/render-batch-array.ts";
import { renderBatchScript } from "../../agent/render/render-batch-script.ts";
import { wrapperBody } from "../../agent/render/template.ts";
import { reportRequest } from "../../agent/report-request.ts";
import { JobSpec, type JobSpecInput } from "../../schemas/job.ts";
import { createWorld } from "../gateway/world.ts";

const body = wrapperBody();
const text = fc.string({ unit: "binary", maxLength: 40 });
const specInput = fc.record({
  name: fc.stringMatching(/^[A-Za-z0-9._-]{1,40}$/),
  command: fc.array(text, { minLength: 1, maxLength: 4 }),
  env: fc.dictionary(fc.stringMatching(/^[A-Z_][A-Z0-9_]{0,15}$/), text, { maxKeys: 4 }),
  setup: fc.array(fc.stringMatching(/^[a-z0-9 ./=-]{0,30}$/), { maxLength: 2 }),
});

/** Renders, or undefined when the schema or renderer refuses the input (that is their property to test). */
function rendered(fn: () => { script: string }): string | undefined {
  try {
    return fn().script;
  } catch (err) {
    if (err instanceof RenderError) {
      return undefined;
    }
    throw err;
  }
}

const single = (spec: JobSpecInput, jobId = "job_0123456789abcdefghij") =>
  rendered(() =>
    renderBatchScript({
      lease: { jobId, attempt: 1, spec: spec as never },
      jobDir: `/shared/alice/${jobId}`,
      secretsFile: null,
      apptainerBin: "apptainer",
    }),
  );

/**
 * The agent's gateway client against the real in-process gateway `w`, recording each report
 * request's JSON body; `answer` may answer one in the gateway's place.
 */
function agentApi(w: Awaited<ReturnType<typeof createWorld>>, answer?: (wire: ReportWire) => Response | undefined) {
  const sent: ReportWire[] = [];
  const api = createGatewayApi({
    baseUrl: "http://gateway.test",
    token: w.tokens.alphaAgent,
    fetch: async (input, init) => {
      const request = input instanceof Request ? input : new Request(input, init);
      if (request.url.endsWith("/v1/agent/reports")) {
        const wire = JSON.parse(await request.clone().text()) as ReportWire;
        sent.push(wire);
        const answered = answer?.(wire);
        if (answered) {
          return answered;
        }
      }
      return w.app.request(request);
    },
  });
  return { api, sent };
}

type ReportWire = { reports: Report[]; scriptBodies?: Record<string, string> };

describe("a rendered script is head + the wrapper body", () => {
  it("holds for single jobs and arrays, for arbitrary specs", () => {
    expect(body.sha256).toBe(createHash("sha256").update(body.text, "utf8").digest("hex"));
    expect(body.text.length).toBeGreaterThan(10_000);
    let checked = 0;
    fc.assert(
      fc.property(specInput, (input) => {
        const parsed = JobSpec.safeParse(input);
        fc.pre(parsed.success);
        const array = rendered(() =>
          renderArrayScript({
            batch: { id: "bat_0123456789abcdefghij", maxParallel: 2 },
            batchDir: "/shared/alice/bat_0123456789abcdefghij",
            spec: parsed.data as JobSpec,
            indexes: [0, 1, 5],
            workdir: null,
            apptainerBin: "apptainer",
          }),
        );
        for (const script of [single(input), array]) {
          if (script === undefined) {
            continue;
          }
          checked++;
          const { reports, scriptBodies } = reportRequest("a", [{ jobId: "j", epoch: 1, script, logs: [] }]);
          expect(reports[0]?.scriptBody).toBe(body.sha256);
          expect(`${reports[0]?.script}${scriptBodies?.[body.sha256]}`).toBe(script);
        }
      }),
      { numRuns: 100 },
    );
    expect(checked).toBeGreaterThan(100);
  });
});

describe("reportRequest", () => {
  const scripts = Array.from({ length: 100 }, (_, i) => single({ name: `j${i}`, command: ["echo", String(i)] }));

  it("carries the body once for 100 split scripts and leaves the reports it was given whole", () => {
    const reports: Report[] = scripts.map((script, i) => ({
      jobId: `job_${i}`,
      epoch: 1,
      state: "submitted",
      script,
      logs: [],
    }));
    const kept = structuredClone(reports);
    const request = reportRequest("agent-1", reports);
    expect(Object.keys(request.scriptBodies ?? {})).toEqual([body.sha256]);
    expect(request.scriptBodies?.[body.sha256]).toBe(body.text);
    request.reports.forEach((sent, i) => {
      expect(sent.scriptBody).toBe(body.sha256);
      expect(sent.script + body.text).toBe(scripts[i]);
    });
    expect(reports).toEqual(kept);
    const before = JSON.stringify({ agentId: "agent-1", reports }).length;
    expect(JSON.stringify(request).length).toBeLessThan(before / 5);
  });

  it("sends whole what does not end with a known body, and adds no scriptBodies for it", () => {
    const script = scripts[0] as string;
    const others: Report[] = [
      { jobId: "a", epoch: 1, script: `${script}\n`, logs: [] },
      { jobId: "b", epoch: 1, script: script.slice(0, -1), logs: [] },
      { jobId: "c", epoch: 1, script: `${body.text}# older template's tail\n`, logs: [] },
      { jobId: "d", epoch: 1, script: "", logs: [] },
      { jobId: "e", epoch: 1, state: "running", logs: [] },
    ];
    const request = reportRequest("agent-1", others);
    expect(request.reports).toEqual(others);
    expect(request).not.toHaveProperty("scriptBodies");
    // Mixed with a split one, the body still travels once and only the split report names it.
    const mixed = reportRequest("agent-1", [...others, { jobId: "f", epoch: 1, script, logs: [] }]);
    expect(mixed.reports.filter((r) => r.scriptBody !== undefined).map((r) => r.jobId)).toEqual(["f"]);
    expect(Object.keys(mixed.scriptBodies ?? {})).toHaveLength(1);
  });

  it("through the real gateway: the script read back is the one rendered, byte for byte", async () => {
    const w = await createWorld();
    const { api, sent } = agentApi(w);
    const ids = [(await w.submit(w.tokens.alice)).id, (await w.submit(w.tokens.alice)).id];
    const leases = (await w.lease(w.tokens.alphaAgent, "agent-1", { max: 10 })).body.leases;
    const reports: Report[] = leases.map((lease) => ({
      jobId: lease.jobId,
      epoch: lease.epoch,
      state: "submitted",
      slurmJobId: "42",
      script: single({ name: "train", command: ["echo", "é ✓ 🚀"], env: { X: "$(x) 'q'" } }, lease.jobId) as string,
      logs: [],
    }));
    expect(reports.every((r) => r.script?.endsWith(body.text))).toBe(true);
    const result = await api.report("agent-1", reports);
    expect(result.ok && result.value.map((o) => o.status)).toEqual(["applied", "applied"]);
    expect(sent).toHaveLength(1);
    const wire = sent[0]!;
    expect(wire.scriptBodies).toEqual({ [body.sha256]: body.text });
    expect(wire.reports.map((r) => r.scriptBody)).toEqual([body.sha256, body.sha256]);
    for (const report of reports) {
      const res = await w.request("GET", `/v1/jobs/${report.jobId}/script`, { token: w.tokens.alice });
      expect(await res.text()).toBe(report.script);
    }
    expect(leases.map((l) => l.jobId).sort()).toEqual(ids.sort());
  });

  it("a gateway from before shared bodies refuses the field: the same reports go again, scripts whole", async () => {
    const w = await createWorld();
    // What a strict ReportBatch without the field answers (an older gateway).
    const problem = {
      type: "about:blank",
      title: "Validation failed",
      status: 422,
      detail: "body.scriptBodies: unknown field",
    };
    const { api, sent } = agentApi(w, (wire) =>
      wire.scriptBodies
        ? new Response(JSON.stringify(problem), {
            status: 422,
            headers: { "content-type": "application/problem+json" },
          })
        : undefined,
    );
    await w.submit(w.tokens.alice);
    const [lease] = (await w.lease(w.tokens.alphaAgent, "agent-1", { max: 1 })).body.leases;
    const script = single({ name: "old-gateway", command: ["true"] }, lease!.jobId) as string;
    const report: Report = {
      jobId: lease!.jobId,
      epoch: lease!.epoch,
      state: "submitted",
      slurmJobId: "7",
      script,
      logs: [],
    };
    const result = await api.report("agent-1", [report]);
    expect(result.ok && result.value.map((o) => o.status)).toEqual(["applied"]);
    expect(sent.map((b) => [Boolean(b.scriptBodies), b.reports[0]?.script === script])).toEqual([
      [true, false],
      [false, true],
    ]);
    const res = await w.request("GET", `/v1/jobs/${report.jobId}/script`, { token: w.tokens.alice });
    expect(await res.text()).toBe(script);
  });

  it("a report refused for itself is refused again, once: no loop, the caller sees the 422", async () => {
    const w = await createWorld();
    const { api, sent } = agentApi(w);
    const script = single({ name: "bad", command: ["true"] }) as string;
    const bad = { jobId: "not-a-job-id", epoch: 1, state: "submitted", script, logs: [] } as unknown as Report;
    const result = await api.report("agent-1", [bad]);
    expect(result).toMatchObject({ ok: false, status: 422 });
    expect(sent).toHaveLength(2);
  });
});
