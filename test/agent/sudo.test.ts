/**
 * A sudo-mode site agent's building blocks, on this machine's real sudo and coreutils (the suite runs
 * as root, who may act as any account without a rule; an unknown account is refused as a missing
 * rule is): which setups start, the executor acting as a user, reads routed to the owner's account.
 */
import { execFileSync } from "node:child_process";
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseAgentConfig } from "../../agent/config.ts";
import { createLocalExecutor } from "../../agent/executor/local.ts";
import { siteModeOf } from "../../agent/identity/from-config.ts";
import { IdentityRefusal } from "../../agent/identity/guard.ts";
import { isSudoRefusal, parseStat, sudoExecutor, sudoReads, sudoersLines } from "../../agent/identity/sudo.ts";
import { prepareJobDir } from "../../agent/paths.ts";
import { createSlurmCommands } from "../../agent/slurm-commands.ts";
import { ensurePosixUser } from "../e2e/posix-users.ts";
import { varTmpDir } from "../helpers/var-tmp.ts";

const local = createLocalExecutor();
const BASE = {
  SLURMGATE_URL: "http://127.0.0.1:1",
  SLURMGATE_AGENT_TOKEN: `sga_${"a".repeat(43)}`,
  SLURMGATE_CLUSTER: "alpha",
  SLURMGATE_SHARED_ROOTS: "/tmp",
};
const config = (extra: Record<string, string>) => parseAgentConfig({ ...BASE, ...extra });

describe("which site agent starts", () => {
  it.each([
    [{}, 0, null],
    [{}, 1000, null],
    [{ SLURMGATE_USER_MAP: "/m" }, 0, "root"],
    [{ SLURMGATE_USER_MAP: "/m", SLURMGATE_RUN_AS: "root" }, 0, "root"],
    [{ SLURMGATE_USER_MAP: "/m", SLURMGATE_RUN_AS: "sudo" }, 1000, "sudo"],
  ])("%j as uid %i → %s", (extra, uid, mode) => {
    expect(siteModeOf(config(extra), uid)).toBe(mode);
  });

  it.each([
    [{ SLURMGATE_USER_MAP: "/m" }, 1000, "SLURMGATE_RUN_AS=sudo"],
    [{ SLURMGATE_USER_MAP: "/m", SLURMGATE_RUN_AS: "root" }, 1000, "run the agent as root"],
    [{ SLURMGATE_USER_MAP: "/m", SLURMGATE_RUN_AS: "sudo" }, 0, "not as root"],
    [{ SLURMGATE_RUN_AS: "sudo" }, 1000, "set SLURMGATE_USER_MAP"],
    [{ SLURMGATE_USER_MAP: "/m", SLURMGATE_RUN_AS: "sudo", SLURMGATE_SSH_HOST: "login1" }, 1000, "not over SSH"],
  ])("refuses the ambiguous or wrong setup %j as uid %i with one line", (extra, uid, words) => {
    expect(() => siteModeOf(config(extra), uid)).toThrow(words);
  });

  it("refuses an unknown SLURMGATE_RUN_AS at parse time", () => {
    expect(() => config({ SLURMGATE_RUN_AS: "setuid" })).toThrow(/SLURMGATE_RUN_AS/);
  });
});

describe("the sudoers rule and sudo's refusals", () => {
  it("names every tool by absolute path, Slurm's from SLURMGATE_SLURM_BIN, and validates with visudo", () => {
    const lines = sudoersLines("slurmgate", { slurmBin: "/opt/slurm/bin/" });
    expect(lines[1]).toBe(
      "slurmgate ALL=(%slurmgate-users) NOPASSWD: /opt/slurm/bin/sbatch, /opt/slurm/bin/scancel, /usr/bin/mkdir, /usr/bin/tee, /usr/bin/dd, /usr/bin/stat, /usr/bin/realpath, /usr/bin/rm, /usr/bin/mv, /usr/bin/chmod, /usr/bin/find",
    );
    const dir = mkdtempSync(join(tmpdir(), "sg-sudoers-"));
    writeFileSync(join(dir, "rule"), `${sudoersLines("slurmgate").join("\n")}\n`);
    expect(execFileSync("visudo", ["-cf", join(dir, "rule")], { encoding: "utf8" })).toContain("parsed OK");
  });

  it("tells sudo's refusals from a tool's own failures", () => {
    const r = (code: number, stderr: string) => ({ code, stdout: "", stderr, timedOut: false });
    expect(isSudoRefusal(r(1, "sudo: a password is required\n"))).toBe(true);
    expect(isSudoRefusal(r(1, "sudo: unknown user sg-nobody\nsudo: error initializing audit plugin\n"))).toBe(true);
    expect(
      isSudoRefusal(r(1, "Sorry, user sg-svc is not allowed to execute '/usr/bin/tee x' as sg-carol on vm.\n")),
    ).toBe(true);
    expect(isSudoRefusal(r(1, "mkdir: cannot create directory 'x': File exists\n"))).toBe(false);
    expect(isSudoRefusal(r(1, "sbatch: error: Batch job submission failed: sudo: a password is required\n"))).toBe(
      false,
    );
    expect(isSudoRefusal(r(0, "sudo: unable to resolve host vm\n"))).toBe(false);
  });

  it("parses stat's line, and nothing else", () => {
    expect(parseStat("symbolic link|7|777|1700000000\n")).toMatchObject({
      isSymbolicLink: true,
      isFile: false,
      mode: 0o777,
    });
    expect(parseStat("regular empty file|0|600|1")).toMatchObject({
      isFile: true,
      size: 0,
      mode: 0o600,
      mtimeMs: 1000,
    });
    expect(parseStat("garbage")).toBeNull();
  });
});

describe("an executor acting as a user through sudo", () => {
  const alice = ensurePosixUser("sg-alice");
  const bob = ensurePosixUser("sg-bob");
  const asAlice = sudoExecutor(local, "sg-alice", { account: "sg-svc" });
  const shared = () => {
    const root = varTmpDir("sg-sudo-unit-");
    chmodSync(root, 0o1777);
    return root;
  };

  it("creates job directories and files that belong to the user from birth, 0700 and 0600", async () => {
    const root = shared();
    const jobDir = await prepareJobDir(
      asAlice,
      { declared: [root], real: [root] },
      "alice",
      "job_0123456789abcdefghijk",
    );
    process.umask(0o077);
    const bytes = Buffer.from([0, 1, 2, 255, 254, 10, 0]);
    await asAlice.writeFile(join(jobDir, "data"), bytes, 0o600);
    for (const path of [join(root, "alice"), jobDir, join(jobDir, "data")]) {
      const info = statSync(path);
      expect([path, info.uid, info.gid]).toEqual([path, alice.uid, alice.gid]);
    }
    expect(statSync(jobDir).mode & 0o777).toBe(0o700);
    expect(statSync(join(jobDir, "data")).mode & 0o077).toBe(0);
    expect(readFileSync(join(jobDir, "data"))).toEqual(bytes);
    // Binary bytes come back unchanged, by range, as the user.
    expect(await asAlice.readFile(join(jobDir, "data"))).toEqual(bytes);
    expect(await asAlice.readFile(join(jobDir, "data"), { offset: 3, length: 2 })).toEqual(Buffer.from([255, 254]));
    expect(await asAlice.readFile(join(jobDir, "data"), { offset: 99 })).toEqual(Buffer.alloc(0));
    expect(await asAlice.stat(join(jobDir, "data"))).toMatchObject({ isFile: true, size: 7 });
    expect(await asAlice.mkdirNoFollow(jobDir)).toBe(false);
    expect(await asAlice.realpath(jobDir)).toBe(jobDir);
    await asAlice.rm(join(jobDir, "data"));
    expect(await asAlice.stat(join(jobDir, "data"))).toBeNull();
  });

  it("reads nothing through a symlink the user planted, and cannot read another user's 0700 directory", async () => {
    const root = shared();
    const bobDir = join(root, "bob");
    mkdirSync(bobDir, { mode: 0o700 });
    writeFileSync(join(bobDir, "secret"), "bob's");
    execFileSync("chown", ["-R", `${bob.uid}:${bob.gid}`, bobDir]);
    const aliceDir = join(root, "alice");
    mkdirSync(aliceDir, { mode: 0o700 });
    symlinkSync("/etc/shadow", join(aliceDir, "stdout"));
    execFileSync("chown", ["-R", "-h", `${alice.uid}:${alice.gid}`, aliceDir]);
    expect(await asAlice.readFile(join(aliceDir, "stdout"))).toBeNull();
    expect((await asAlice.stat(join(aliceDir, "stdout")))?.isSymbolicLink).toBe(true);
    expect(await asAlice.readFile(join(bobDir, "secret"))).toBeNull();
    expect(lstatSync(join(aliceDir, "stdout")).isSymbolicLink()).toBe(true);
  });

  it("a sudo refusal is IdentityRefusal sudo_refused naming the sudoers line, and nothing is created", async () => {
    const root = shared();
    const ghost = sudoExecutor(local, "sg-nobody-here", { account: "sg-svc" });
    const err = await prepareJobDir(
      ghost,
      { declared: [root], real: [root] },
      "ghost",
      "job_0123456789abcdefghijk",
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IdentityRefusal);
    expect((err as IdentityRefusal).code).toBe("sudo_refused");
    expect((err as Error).message).toContain("sg-svc ALL=(%slurmgate-users) NOPASSWD: /usr/bin/sbatch");
    expect(execFileSync("ls", ["-A", root], { encoding: "utf8" })).toBe("");
  });

  it("routes reads under <root>/<owner> to the owner's account; unmapped owners read as nothing", async () => {
    const root = shared();
    const aliceDir = join(root, "alice");
    mkdirSync(aliceDir, { mode: 0o700 });
    writeFileSync(join(aliceDir, "stdout"), "hello");
    execFileSync("chown", ["-R", `${alice.uid}:${alice.gid}`, aliceDir]);
    const outside = varTmpDir("sg-sudo-unit-own-");
    writeFileSync(join(outside, "plain"), "mine");
    const calls: string[] = [];
    const recording = {
      ...local,
      run: (cmd: string, args: readonly string[], opts?: Parameters<typeof local.run>[2]) => {
        calls.push(`${cmd} ${args.slice(0, 3).join(" ")}`);
        return local.run(cmd, args, opts);
      },
    };
    const reads = sudoReads(local, root, (owner) =>
      owner === "alice" ? sudoExecutor(recording, "sg-alice", { account: "sg-svc" }) : null,
    );
    expect((await reads.readFile(join(aliceDir, "stdout")))?.toString()).toBe("hello");
    expect(calls).toEqual(["sudo -n -u sg-alice"]);
    expect(await reads.readFile(join(root, "carol", "stdout"))).toBeNull();
    // `..` cannot smuggle another owner's path past the routing.
    expect(await reads.readFile(join(root, "alice", "..", "carol", "stdout"))).toBeNull();
    expect((await reads.readFile(join(outside, "plain")))?.toString()).toBe("mine");
    expect(calls).toHaveLength(1);
    // An owner sudo refuses (out of the Runas list) reads as absent rather than failing the cycle.
    const refusing = sudoReads(local, root, () => sudoExecutor(local, "sg-nobody-here", { account: "sg-svc" }));
    expect(await refusing.readFile(join(aliceDir, "stdout"))).toBeNull();
    expect(await refusing.stat(join(aliceDir, "stdout"))).toBeNull();
  });
});

describe("Slurm commands through sudo", () => {
  const refused = createSlurmCommands({
    executor: sudoExecutor(local, "sg-nobody-here", { account: "sg-svc" }),
    env: { PATH: "/usr/bin:/bin" },
    binDir: "",
    apptainer: "apptainer",
    timeoutMs: 10_000,
  });

  it("an sbatch sudo refuses is a permanent sudo_refused, never an unknown outcome to look up and retry", async () => {
    const outcome = await refused.sbatch("/var/tmp/none/job.sbatch", ["--export=NONE"]);
    expect(outcome).toMatchObject({ ok: false, retryable: false, code: "sudo_refused" });
    expect(outcome.ok ? "" : outcome.message).toContain("NOPASSWD: /usr/bin/sbatch, /usr/bin/scancel");
  });

  it("an scancel sudo refuses reports failure with the sentence instead of throwing", async () => {
    const result = await refused.scancel(["12345"]);
    expect(result).toMatchObject({ ok: false, retryable: false, code: "sudo_refused" });
    expect(result.ok ? "" : result.message).toContain("sudo refused to run scancel as sg-nobody-here");
  });
});
