import type { Me } from "../../client/index.ts";
import { parse, positionals } from "../args.ts";
import { type Command, helped } from "../command.ts";
import { clientFor, readConfig } from "../config.ts";
import type { Io } from "../io.ts";
import { printJson } from "../output.ts";

export const whoami: Command = {
  name: "whoami",
  summary: "show who you are to the gateway, and where that identity comes from",
  help: `
Usage: slurmgate whoami [--json]

Asks the gateway (GET /v1/me) who the configured credentials belong to, and says where they come
from: a slurmgate token (its first characters, from SLURMGATE_TOKEN or the login file), or an
OIDC sign-in (issuer, subject, and until when its ID token is good; it is refreshed by itself).

Examples:
  slurmgate whoami
  SLURMGATE_TOKEN=sgk_… slurmgate whoami --json
`,
  async run(argv, io) {
    const { values, positionals: rest } = parse("whoami", argv, {});
    if (helped(io, whoami, values)) {
      return 0;
    }
    positionals("whoami", rest, []);
    const client = clientFor(io);
    const me = await client.me();
    // Read after the call: it may just have refreshed the sign-in.
    const credentials = credentialsOf(io);
    if (values.json) {
      printJson(io, { ...me, url: client.baseUrl, credentials });
      return 0;
    }
    const who = `${me.user ?? `agent of ${me.cluster}`} (${me.kind}) at ${client.baseUrl}`;
    io.stdout.write(`${who}\n  ${describe(credentials, me.via)}\n`);
    return 0;
  },
};

/** The gateway's word on issuer and subject when it gives one; the local file adds the expiry. */
function describe(credentials: Credentials, via: Me["via"] | undefined): string {
  if (via?.kind === "token" || (via === undefined && credentials.kind === "token")) {
    return credentials.kind === "token"
      ? `token ${credentials.prefix}… from ${credentials.from === "env" ? "SLURMGATE_TOKEN" : "the login file"}`
      : "a slurmgate token";
  }
  const issuer = via?.issuer ?? (credentials.kind === "oidc" ? credentials.issuer : "?");
  const subject = via?.subject ?? (credentials.kind === "oidc" ? credentials.subject : "?");
  const local =
    credentials.kind === "oidc" && credentials.issuer === issuer
      ? `, ID token good until ${credentials.expiresAt}${credentials.refreshable ? " (refreshed by itself)" : " (no refresh token)"}`
      : "";
  return `${via?.kind === "workload" ? "workload" : "signed in"} at ${issuer} as ${subject}${local}`;
}

type Credentials =
  | { kind: "token"; prefix: string; from: "env" | "config" }
  | { kind: "oidc"; issuer: string; subject: string; expiresAt: string; refreshable: boolean };

/** Where the credentials `clientFor` used came from, in the same order it looks. */
function credentialsOf(io: Io): Credentials {
  // A token's kind and a few characters identify it in a list of tokens without giving it away.
  const prefix = (token: string) => token.slice(0, 8);
  if (io.env.SLURMGATE_TOKEN) {
    return { kind: "token", prefix: prefix(io.env.SLURMGATE_TOKEN), from: "env" };
  }
  const stored = readConfig(io.env);
  if (stored.token || !stored.oidc) {
    return { kind: "token", prefix: prefix(stored.token ?? ""), from: "config" };
  }
  const { issuer, subject, expiresAt, refreshToken } = stored.oidc;
  return { kind: "oidc", issuer, subject, expiresAt, refreshable: refreshToken !== undefined };
}
