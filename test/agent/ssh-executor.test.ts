/**
 * The SSH executor against a real OpenSSH sshd on loopback (test/ssh/sshd.sh): argv and
 * environment round-trip exactly, timeouts kill the remote process, file operations behave like
 * the local executor's, a wrong host key is refused, and a dropped connection is re-opened.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createLocalExecutor } from "../../agent/executor/local.ts";
import {
  HostKeyMismatchError,
  type SshExecutor,
  buildRemoteCommand,
  createSshExecutor,
  parsePinnedHostKey,
} from "../../agent/executor/ssh.ts";
import { createSlurmCommands } from "../../agent/slurm-commands.ts";
import { varTmpDir } from "../helpers/var-tmp.ts";

const REPO = join(import.meta.dirname, "..", "..");
const TEST_DIR = process.env.SLURMGATE_TEST_DIR ?? "/var/tmp/slurmgate-test";

type SshInfo = { host: string; port: number; user: string; key: string; hostKey: string };

function sshInfo(): SshInfo {
  const file = join(TEST_DIR, "ssh", "ssh.json");
  if (!existsSync(file)) {
    // Idempotent; fails loudly (never skips) when sshd cannot come up.
    execFileSync("bash", [join(REPO, "test/ssh/sshd.sh"), "up"], { stdio: "inherit" });
  }
  return JSON.parse(readFileSync(file, "utf8"));
}

let info: SshInfo;
let ssh: SshExecutor;
let dir: string;
const open: SshExecutor[] = [];

const connect = (extra: Partial<Parameters<typeof createSshExecutor>[0]> = {}) => {
  const ex = createSshExecutor({
    host: info.host,
    port: info.port,
    username: info.user,
    hostKey: info.hostKey,
    privateKey: readFileSync(info.key),
    minBackoffMs: 50,
    maxBackoffMs: 200,
    ...extra,
  });
  open.push(ex);
  return ex;
};

beforeAll(() => {
  info = sshInfo();
  ssh = connect();
  dir = varTmpDir("slurmgate-ssh-exec-");
});

afterAll(() => {
  for (const ex of open) {
    ex.close();
  }
  rmSync(dir, { recursive: true, force: true });
});

/** Running (a zombie waiting for a reaper counts as dead: it no longer runs). */
const alive = (pid: number) => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
};

/** Waits up to 3 s for every pid to be gone. */
async function gone(pids: number[]) {
  for (let i = 0; i < 30 && pids.some(alive); i++) {
    await new Promise((res) => setTimeout(res, 100));
  }
  return pids.filter(alive);
}

describe("commands over SSH", () => {
  it("builds one quoted shell line with exec, env -i and </dev/null", () => {
    expect(buildRemoteCommand("squeue", ["-o", "%i|%T"], { env: { LC_ALL: "C" } })).toBe(
      "exec 'env' '-i' 'LC_ALL=C' 'squeue' '-o' '%i|%T' </dev/null",
    );
    expect(buildRemoteCommand("ls", [], { cwd: "/tmp/it's", input: "" })).toBe(
      "cd '/tmp/it'\\''s' || exit 1; exec 'ls'",
    );
    expect(() => buildRemoteCommand("x", [], { env: { "A;B": "1" } })).toThrow(/invalid environment variable/);
    expect(() => buildRemoteCommand("a=b", [], { env: {} })).toThrow(/'='/);
  });

  it("passes argv with hostile characters through exactly (same as the local executor)", async () => {
    const nasty = [
      "",
      " ",
      "a b",
      "it's",
      "'",
      "''",
      '"',
      "$HOME",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal the shell must not expand
      "${HOME}",
      "$(id)",
      "`id`",
      "\\",
      "\\'",
      "*",
      "?",
      "[a]",
      "~",
      "-n",
      "--",
      ";",
      "&&",
      "|",
      ">x",
      "<x",
      "#c",
      "!",
      "\t",
      "é漢字🙂",
      "%s%d",
    ];
    const local = await createLocalExecutor().run("printf", ["%s\\0", ...nasty]);
    const remote = await ssh.run("printf", ["%s\\0", ...nasty]);
    expect(remote.code).toBe(0);
    expect(remote.stdout.split("\0").slice(0, -1)).toEqual(nasty);
    expect(remote.stdout).toBe(local.stdout);
  });

  it("round-trips random argv (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.string({ unit: "binary", maxLength: 20 }).filter((s) => !/[\0\r\n]/.test(s)),
          { maxLength: 6 },
        ),
        async (args) => {
          const { stdout, code } = await ssh.run("printf", ["%s\\0", "start", ...args]);
          expect(code).toBe(0);
          expect(stdout.split("\0").slice(1, -1)).toEqual(args);
        },
      ),
      { numRuns: 25 },
    );
    // 25 commands, each starting the login user's shell: a heavy ~/.bashrc (pyenv init: 0.6 s on
    // this machine) makes that 16 s on a quiet machine, more under a full suite.
  }, 120_000);

  it("sets exactly the given environment, without AcceptEnv", async () => {
    const env = { PATH: "/usr/bin:/bin", A: "x y", B: "it's $HOME `id`", EMPTY: "", LC_ALL: "C" };
    const { stdout, code } = await ssh.run("env", ["-0"], { env });
    expect(code).toBe(0);
    const got = Object.fromEntries(
      stdout
        .split("\0")
        .filter(Boolean)
        .map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
    );
    expect(got).toEqual(env);
  });

  it("feeds input on stdin, and /dev/null when there is none", async () => {
    expect((await ssh.run("cat", [], { input: "line 1\nline 2 'q'\n" })).stdout).toBe("line 1\nline 2 'q'\n");
    expect((await ssh.run("readlink", ["/proc/self/fd/0"])).stdout.trim()).toBe("/dev/null");
  });

  it("returns exit code and stderr, and runs in cwd", async () => {
    const r = await ssh.run("bash", ["-c", "echo out; echo err >&2; exit 7"]);
    expect(r).toEqual({ code: 7, stdout: "out\n", stderr: "err\n", timedOut: false });
    expect((await ssh.run("pwd", [], { cwd: dir })).stdout.trim()).toBe(dir);
    expect((await ssh.run("true", [], { cwd: join(dir, "missing") })).code).not.toBe(0);
  });

  it("kills the remote command and its children on timeout (TERM, then KILL)", async () => {
    const pidFile = join(dir, "pid");
    const started = Date.now();
    const r = await ssh.run("bash", ["-c", `echo $$ > ${pidFile}; sleep 30 & echo $! >> ${pidFile}; wait`], {
      timeoutMs: 500,
    });
    expect(r.timedOut).toBe(true);
    expect(r.code).toBeNull();
    expect(Date.now() - started).toBeLessThan(5_000);
    const pids = readFileSync(pidFile, "utf8").trim().split("\n").map(Number);
    expect(pids).toHaveLength(2);
    expect(await gone(pids)).toEqual([]);
    // A command that ignores TERM is killed after the grace period.
    const stubborn = await ssh.run("bash", ["-c", `trap '' TERM; echo $$ > ${pidFile}; while :; do sleep 1; done`], {
      timeoutMs: 300,
    });
    expect(stubborn.timedOut).toBe(true);
    expect(await gone([Number(readFileSync(pidFile, "utf8"))])).toEqual([]);
  });

  it("cuts output beyond the cap exactly as the local executor does, on both streams", async () => {
    const maxOutputBytes = 1_000;
    const local = createLocalExecutor({ maxOutputBytes });
    const remote = connect({ maxOutputBytes });
    // 100 kB in chunks of many sizes, a multi-byte character straddling the cut on stdout.
    const script = "printf '%999s\\303\\251' '' ; yes 0123456789 | head -c 100000; yes err | head -c 100000 >&2";
    const [l, r] = [await local.run("sh", ["-c", script]), await remote.run("sh", ["-c", script])];
    expect(r).toEqual(l);
    expect(Buffer.byteLength(r.stdout)).toBeLessThanOrEqual(maxOutputBytes + 2); // 999 spaces + U+FFFD
    expect(r.stdout).toBe(`${" ".repeat(999)}\uFFFD`);
    expect(r.stderr).toBe("err\n".repeat(250));
    expect(r.code).toBe(0);
  });

  it("still kills a timed-out command whose stderr is over a tiny cap, and never shows the pid line", async () => {
    const pidFile = join(dir, "capped-pid");
    const tiny = connect({ maxOutputBytes: 3 });
    const r = await tiny.run(
      "bash",
      ["-c", `echo $$ > ${pidFile}; head -c 100000 /dev/zero | tr '\\0' e >&2; sleep 30`],
      {
        timeoutMs: 500,
      },
    );
    expect(r).toEqual({ code: null, stdout: "", stderr: "eee", timedOut: true });
    expect(await gone([Number(readFileSync(pidFile, "utf8"))])).toEqual([]);
    // A command that prints nothing keeps nothing of the announcement either.
    expect(await tiny.run("true", [])).toEqual({ code: 0, stdout: "", stderr: "", timedOut: false });
  });

  it("runs commands concurrently on one connection", async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => ssh.run("sh", ["-c", `sleep 0.1; echo ${i}`])),
    );
    expect(results.map((r) => r.stdout.trim())).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
  });
});

describe("file operations over SFTP", () => {
  it("writes atomically with the mode, reads ranges, and reports missing files as null", async () => {
    const file = join(dir, "sub", "job.sbatch");
    await ssh.mkdir(join(dir, "sub"), 0o750);
    await ssh.writeFile(file, "#!/bin/bash\necho hi\n", 0o700);
    expect(readFileSync(file, "utf8")).toBe("#!/bin/bash\necho hi\n");
    expect((await ssh.stat(file))?.mode).toBe(0o700);
    await ssh.writeFile(file, new Uint8Array([1, 2, 3]), 0o640);
    expect([...readFileSync(file)]).toEqual([1, 2, 3]);
    expect((await ssh.stat(file))?.mode).toBe(0o640);
    expect(execFileSync("ls", ["-A", join(dir, "sub")], { encoding: "utf8" }).trim()).toBe("job.sbatch");

    const big = Buffer.alloc(200_000, 0);
    for (let i = 0; i < big.length; i++) {
      big[i] = i % 251;
    }
    writeFileSync(join(dir, "big"), big);
    expect((await ssh.readFile(join(dir, "big")))?.equals(big)).toBe(true);
    expect(
      (await ssh.readFile(join(dir, "big"), { offset: 70_000, length: 50_000 }))?.equals(big.subarray(70_000, 120_000)),
    ).toBe(true);
    expect((await ssh.readFile(join(dir, "big"), { offset: 199_990, length: 100 }))?.length).toBe(10);
    expect(await ssh.readFile(join(dir, "nope"))).toBeNull();
    expect(await ssh.readFile(join(dir, "nope", "deeper"))).toBeNull();
  });

  it("stats with lstat semantics and resolves real paths", async () => {
    writeFileSync(join(dir, "target"), "x");
    chmodSync(join(dir, "target"), 0o604);
    symlinkSync(join(dir, "target"), join(dir, "link"));
    const link = await ssh.stat(join(dir, "link"));
    expect(link).toMatchObject({ isSymbolicLink: true, isFile: false });
    expect(await ssh.stat(join(dir, "target"))).toMatchObject({ isFile: true, size: 1, mode: 0o604 });
    expect((await ssh.stat(dir))?.isDirectory).toBe(true);
    expect(await ssh.stat(join(dir, "missing"))).toBeNull();
    expect(await ssh.realpath(join(dir, "link"))).toBe(join(dir, "target"));
    expect(await ssh.realpath(join(dir, "missing"))).toBeNull();
    expect(await ssh.realpath(join(dir, "missing", "x"))).toBeNull();
  });

  it("mkdir -p with a mode, and rm -f / rm -rf", async () => {
    const deep = join(dir, "a", "b", "c");
    await ssh.mkdir(deep, 0o700);
    await ssh.mkdir(deep, 0o700); // again: no error
    expect((await ssh.stat(deep))?.mode).toBe(0o700);
    await ssh.writeFile(join(deep, "f"), "1");
    symlinkSync("/etc", join(dir, "a", "b", "etc-link"));
    await expect(ssh.rm(join(dir, "a"))).rejects.toThrow(/directory/);
    await ssh.rm(join(dir, "a"), { recursive: true });
    expect(await ssh.stat(join(dir, "a"))).toBeNull();
    expect(existsSync("/etc/passwd")).toBe(true); // the symlink was removed, not followed
    await ssh.rm(join(dir, "a"), { recursive: true }); // missing: not an error
    await ssh.rm(join(dir, "target"));
    expect(await ssh.stat(join(dir, "target"))).toBeNull();
    writeFileSync(join(dir, "plain"), "x");
    await expect(ssh.mkdir(join(dir, "plain", "sub"))).rejects.toThrow(/not a directory/);
  });
});

describe("the connection", () => {
  it("refuses a server whose host key is not the pinned one, before authenticating", async () => {
    const wrong = `SHA256:${Buffer.alloc(32, 7).toString("base64").replace(/=+$/, "")}`;
    const ex = connect({ hostKey: wrong });
    const err = await ex.run("true", []).catch((e: Error) => e);
    expect(err).toBeInstanceOf(HostKeyMismatchError);
    expect((err as Error).message).toContain(`server offered ${info.hostKey}`);
    expect((err as Error).message).toContain("refusing to connect");
    // Nothing ran, and file operations are refused the same way.
    await expect(ex.stat("/")).rejects.toThrow(/host key mismatch/);
  });

  it("always requires a pinned host key and a credential", () => {
    expect(() => createSshExecutor({ host: "h", username: "u", hostKey: "", privateKey: "k" })).toThrow(
      /SLURMGATE_SSH_HOST_KEY is required/,
    );
    expect(() => parsePinnedHostKey("MD5:aa:bb")).toThrow(/SHA256:<base64>/);
    expect(() => createSshExecutor({ host: "h", username: "u", hostKey: info.hostKey })).toThrow(/SLURMGATE_SSH_KEY/);
    expect(parsePinnedHostKey(`${info.hostKey}=, ${info.hostKey}`)).toEqual([info.hostKey, info.hostKey]);
  });

  it("fails a wrong key's login clearly", async () => {
    const other = join(dir, "other_key");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", other]);
    const ex = connect({ privateKey: readFileSync(other) });
    await expect(ex.run("true", [])).rejects.toThrow(/authentication/i);
  });

  it("fails commands in flight when the connection drops, then reconnects", async () => {
    const ex = connect();
    expect((await ex.run("echo", ["before"])).stdout).toBe("before\n");
    const sftpBefore = await ex.stat(dir);
    expect(sftpBefore?.isDirectory).toBe(true);
    // Kill this connection's sshd session process (the parent of the exec'd command).
    await expect(ex.run("sh", ["-c", "sleep 0.2; kill -9 $PPID"])).rejects.toThrow(
      /lost while running|outcome is unknown/,
    );
    expect((await ex.run("echo", ["after"])).stdout).toBe("after\n");
    expect((await ex.stat(dir))?.isDirectory).toBe(true);
  });

  it("turns an sbatch whose connection died into 'unreachable' (look the tag up), not 'not submitted'", async () => {
    const bin = join(dir, "fakebin");
    execFileSync("mkdir", ["-p", bin]);
    // A fake sbatch that kills the SSH session mid-command, as a dropped link would.
    writeFileSync(join(bin, "sbatch"), "#!/bin/sh\nkill -9 $PPID\nsleep 5\n", { mode: 0o755 });
    const ex = connect();
    const slurm = createSlurmCommands({
      executor: ex,
      env: { PATH: "/usr/bin:/bin" },
      binDir: bin,
      apptainer: "apptainer",
      timeoutMs: 10_000,
    });
    const outcome = await slurm.sbatch(join(dir, "job.sbatch"), []);
    expect(outcome).toMatchObject({ ok: false, retryable: true, code: "unreachable" });
    // The fake bin has no squeue: "don't know", not a throw.
    expect(await slurm.squeue()).toMatchObject({ ok: false, retryable: true });
  });
});
