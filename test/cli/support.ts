/**
 * Runs the real `bin/slurmgate.mjs` as a child process, the way a person or a script would.
 */
import { spawn } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "../helpers/gateway-process.ts";

export const BIN = join(ROOT, "bin/slurmgate.mjs");

export type Run = { code: number | null; stdout: string; stderr: string };

export function runCli(
  args: string[],
  options: {
    env?: Record<string, string | undefined>;
    input?: string;
    timeoutMs?: number;
    sigintAfterMs?: number;
  } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string | undefined> = {
      ...process.env,
      SLURMGATE_URL: undefined,
      SLURMGATE_TOKEN: undefined,
      ...options.env,
    };
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined)),
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 30_000);
    if (options.sigintAfterMs !== undefined) {
      setTimeout(() => child.kill("SIGINT"), options.sigintAfterMs);
    }
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? "");
  });
}

/** Like runCli but under a pseudo-terminal (`script`), so stdout and stderr are TTYs. */
export function runCliInTty(args: string[], env: Record<string, string>): Promise<Run> {
  const quoted = [process.execPath, BIN, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
  return new Promise((resolve, reject) => {
    const child = spawn("script", ["-q", "-e", "-c", quoted, "/dev/null"], {
      cwd: ROOT,
      env: { ...process.env, ...env, TERM: "xterm" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stdout += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr: "" }));
  });
}
