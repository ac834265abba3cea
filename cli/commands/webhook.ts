import type { WebhookEventType } from "../../client/index.ts";
import { WEBHOOK_EVENT_TYPES } from "../../schemas/webhook.ts";
import { integer, parse, positionals } from "../args.ts";
import type { Command } from "../command.ts";
import { clientFor } from "../config.ts";
import { EXIT, UsageError } from "../errors.ts";
import type { Io } from "../io.ts";
import { printJson, table } from "../output.ts";

export const webhook: Command = {
  name: "webhook",
  summary: "signed HTTPS callbacks for your jobs' events: add, ls, rm, enable, deliveries",
  help: `
Usage: slurmgate webhook add URL --event TYPE [--event TYPE]... [--description TEXT]
                             [--cluster NAME] [--sweep SWEEP_ID] [--label KEY=VALUE] [--json]
       slurmgate webhook ls [--json]
       slurmgate webhook rm WEBHOOK_ID
       slurmgate webhook enable WEBHOOK_ID [--json]
       slurmgate webhook deliveries WEBHOOK_ID [--limit N] [--json]

add prints the signing secret once: keep it where your receiver can read it, and verify every
delivery with verifyWebhook() from the client (Standard Webhooks signatures). URLs must be https://
and public; an admin may allow others.

Event types: ${WEBHOOK_EVENT_TYPES.join(", ")}

Exit: 0 ok, 1 refused or unreachable, 2 bad usage.

Examples:
  slurmgate webhook add https://ci.example.org/hooks/slurmgate --event job.completed --event job.failed
  slurmgate webhook deliveries wh_01jd7x2k9m4q8r6t5v3w1y0z --limit 20
`,
  async run(argv, io) {
    const [sub, ...rest] = argv;
    if (sub === undefined || sub === "--help" || sub === "-h" || sub === "help") {
      io.stdout.write(`${webhook.help.trim()}\n`);
      return sub === undefined ? EXIT.usage : EXIT.ok;
    }
    if (rest.includes("--help") || rest.includes("-h")) {
      io.stdout.write(`${webhook.help.trim()}\n`);
      return EXIT.ok;
    }
    switch (sub) {
      case "add":
        return add(rest, io);
      case "ls":
        return ls(rest, io);
      case "rm":
        return rm(rest, io);
      case "enable":
        return enable(rest, io);
      case "deliveries":
        return deliveries(rest, io);
      default:
        throw new UsageError(
          `unknown webhook command ${JSON.stringify(sub)}: add, ls, rm, enable or deliveries`,
          "webhook",
        );
    }
  },
};

async function add(argv: string[], io: Io): Promise<number> {
  const { values, positionals: rest } = parse("webhook", argv, {
    event: { type: "string", multiple: true },
    description: { type: "string" },
    cluster: { type: "string" },
    sweep: { type: "string" },
    label: { type: "string" },
  });
  const [url = ""] = positionals("webhook", rest, ["URL"]);
  if (!values.event?.length) {
    throw new UsageError("give at least one --event (see slurmgate webhook --help for the types)", "webhook");
  }
  let label: { key: string; value: string } | undefined;
  if (values.label !== undefined) {
    const at = values.label.indexOf("=");
    if (at <= 0) {
      throw new UsageError(`--label must be KEY=VALUE, got ${JSON.stringify(values.label)}`, "webhook");
    }
    label = { key: values.label.slice(0, at), value: values.label.slice(at + 1) };
  }
  const scope = {
    ...(values.cluster ? { cluster: values.cluster } : {}),
    ...(values.sweep ? { sweep: values.sweep } : {}),
    ...(label ? { label } : {}),
  };
  const created = await clientFor(io).createWebhook({
    url,
    // The gateway checks each type and names the one it does not know.
    events: values.event as WebhookEventType[],
    ...(values.description !== undefined ? { description: values.description } : {}),
    ...(Object.keys(scope).length ? { scope } : {}),
  });
  if (values.json) {
    printJson(io, created);
    return EXIT.ok;
  }
  io.stdout.write(
    `${created.id}\nsecret: ${created.secret}\n(shown only now: store it where your receiver verifies deliveries)\n`,
  );
  return EXIT.ok;
}

async function ls(argv: string[], io: Io): Promise<number> {
  const { values, positionals: rest } = parse("webhook", argv, {});
  positionals("webhook", rest, []);
  const hooks = await clientFor(io).listWebhooks();
  if (values.json) {
    printJson(io, hooks);
    return EXIT.ok;
  }
  const rows = hooks.map((h) => [
    h.id,
    h.enabled ? "enabled" : `disabled: ${h.disabledReason ?? ""}`,
    h.events.join(","),
    h.url,
  ]);
  io.stdout.write(`${table([["ID", "STATE", "EVENTS", "URL"], ...rows])}\n`);
  return EXIT.ok;
}

async function rm(argv: string[], io: Io): Promise<number> {
  const { positionals: rest } = parse("webhook", argv, {});
  const [id = ""] = positionals("webhook", rest, ["WEBHOOK_ID"]);
  await clientFor(io).deleteWebhook(id);
  io.stdout.write(`deleted ${id}\n`);
  return EXIT.ok;
}

async function enable(argv: string[], io: Io): Promise<number> {
  const { values, positionals: rest } = parse("webhook", argv, {});
  const [id = ""] = positionals("webhook", rest, ["WEBHOOK_ID"]);
  const hook = await clientFor(io).enableWebhook(id);
  if (values.json) {
    printJson(io, hook);
  } else {
    io.stdout.write(`${hook.id} enabled\n`);
  }
  return EXIT.ok;
}

async function deliveries(argv: string[], io: Io): Promise<number> {
  const { values, positionals: rest } = parse("webhook", argv, { limit: { type: "string" } });
  const [id = ""] = positionals("webhook", rest, ["WEBHOOK_ID"]);
  const max = integer("webhook", "--limit", values.limit) ?? 50;
  const items = [];
  for await (const d of clientFor(io).webhookDeliveries(id, { pageSize: Math.min(Math.max(max, 1), 500) })) {
    if (items.length >= max) {
      break;
    }
    items.push(d);
  }
  if (values.json) {
    printJson(io, items);
    return EXIT.ok;
  }
  const rows = items.map((d) => [
    d.cursor,
    d.jobId,
    d.type,
    String(d.attempts),
    d.deliveredAt ? `delivered ${d.deliveredAt}` : `next ${d.nextAttemptAt ?? "-"}`,
    d.lastError ?? (d.lastStatus === null ? "-" : `HTTP ${d.lastStatus}`),
  ]);
  io.stdout.write(`${table([["EVENT", "JOB", "TYPE", "TRIES", "STATE", "LAST"], ...rows])}\n`);
  return EXIT.ok;
}
