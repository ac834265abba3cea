/**
 * Builds a report request's body. A script that ends with a known body (the wrapper's fixed body,
 * ~22 KB of the ~23.5 KB of every rendered script) travels as its head plus the body's sha256, and
 * the body once in `scriptBodies`; any other script goes whole. The split happens only here, at send
 * time: a report kept in memory holds the whole script, so one kept across an upgrade is still right.
 */
import type { components } from "../client/generated/api.ts";
import { type ScriptBody, wrapperBody } from "./render/template.ts";

type ReportBatch = components["schemas"]["ReportBatch"];
type Report = components["schemas"]["Report"];

/**
 * @example
 * reportRequest("agent-1", [{ jobId, epoch, state: "submitted", script }])
 * // => { agentId: "agent-1", reports: [{ …, script: "#!/bin/bash\n…", scriptBody: "9f2c…" }], scriptBodies: { "9f2c…": "\nsg_task=…" } }
 */
export function reportRequest(
  agentId: string,
  reports: readonly Report[],
  bodies: readonly ScriptBody[] = [wrapperBody()],
): ReportBatch {
  const carried: Record<string, string> = {};
  const sent = reports.map((report) => {
    const script = report.script;
    const body = script === undefined ? undefined : bodies.find((b) => script.endsWith(b.text));
    if (script === undefined || body === undefined) {
      return report;
    }
    carried[body.sha256] = body.text;
    return { ...report, script: script.slice(0, script.length - body.text.length), scriptBody: body.sha256 };
  });
  return Object.keys(carried).length ? { agentId, reports: sent, scriptBodies: carried } : { agentId, reports: sent };
}
