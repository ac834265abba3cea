/**
 * A real slurmrestd for tests: started as an unprivileged POSIX user (it refuses root and SlurmUser)
 * with rest_auth/local on a unix socket in a fresh directory, against one of the test clusters.
 * A missing binary throws: the tests that need it fail, never skip.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, chownSync, existsSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { varTmpDir } from "./var-tmp.ts";

export const SLURMRESTD = "/usr/sbin/slurmrestd";

export type RestDaemon = {
  socketPath: string;
  /** `unix:<socketPath>`, as SLURMGATE_SLURMRESTD takes it. */
  target: string;
  child: ChildProcess;
  logs: () => string;
  /** SIGKILL, as a crash would. */
  kill: () => Promise<void>;
  /** Starts it again on the same socket (after kill). */
  restart: () => Promise<void>;
  stop: () => Promise<void>;
};

export async function startSlurmrestd(options: {
  slurmConf: string;
  user: { name: string; uid: number; gid: number };
  dir?: string;
}): Promise<RestDaemon> {
  if (!existsSync(SLURMRESTD)) {
    throw new Error(`${SLURMRESTD} is missing: install Debian's slurmrestd (test/system-tools.sh does)`);
  }
  const dir = options.dir ?? varTmpDir("sg-slurmrestd-");
  chmodSync(dir, 0o755);
  chownSync(dir, options.user.uid, options.user.gid);
  const socketPath = join(dir, "slurmrestd.sock");
  let child!: ChildProcess;
  let output = "";
  const launch = async () => {
    rmSync(socketPath, { force: true });
    child = spawn(
      "setpriv",
      [
        `--reuid=${options.user.uid}`,
        `--regid=${options.user.gid}`,
        "--init-groups",
        SLURMRESTD,
        "-a",
        "rest_auth/local",
        "-s",
        "openapi/v0.0.38",
        `unix:${socketPath}`,
      ],
      {
        env: { PATH: "/usr/sbin:/usr/bin:/bin", SLURM_CONF: options.slurmConf, HOME: `/home/${options.user.name}` },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    child.stdout?.on("data", (d) => (output += d));
    child.stderr?.on("data", (d) => (output += d));
    await waitForSocket(socketPath, child, () => output);
  };
  const exited = (c: ChildProcess) =>
    c.exitCode !== null || c.signalCode !== null
      ? Promise.resolve()
      : new Promise<void>((resolve) => c.once("exit", () => resolve()));
  await launch();
  const daemon: RestDaemon = {
    socketPath,
    target: `unix:${socketPath}`,
    get child() {
      return child;
    },
    logs: () => output,
    async kill() {
      const c = child;
      c.kill("SIGKILL");
      await exited(c);
    },
    restart: launch,
    async stop() {
      const c = child;
      c.kill("SIGTERM");
      await exited(c);
      if (!options.dir) {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
  return daemon;
}

async function waitForSocket(path: string, child: ChildProcess, logs: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`slurmrestd exited (${child.exitCode ?? child.signalCode}):\n${logs()}`);
    }
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect(path, () => {
        socket.end();
        resolve(true);
      });
      socket.on("error", () => resolve(false));
    });
    if (up) {
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`slurmrestd did not listen on ${path} within 15 s:\n${logs()}`);
}
