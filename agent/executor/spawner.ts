/**
 * A small, long-lived process (python3's posix_spawn, or bash: agent/executor/spawner-programs.ts)
 * that starts the agent's commands for it.
 *
 * Why: Node starts a child with fork(), which copies the page tables of the whole agent and blocks
 * the event loop until the child has exec'd: measured here at 10–40 ms per sbatch under load, more
 * than sbatch itself (bench/RESULTS-agent.md). A small spawner starts a command in well under a
 * millisecond, and the agent only writes a request to a pipe. The agent keeps a few of them; each
 * command still gets argv as an array (never shell text), exactly the environment given, a timeout
 * (TERM, then KILL) and its output capped per stream.
 *
 * Queueing: a spawner runs one command at a time, but the next may be queued behind it (a submission
 * lane, agent/executor/lane.ts), so that the spawner starts the next sbatch the moment the one before
 * ends, as a bash loop does, instead of after a round trip through the agent. Exactly-once still holds:
 * - the caller writes a job's "submitting" record before its request is queued, so whatever the
 *   spawner does with it later, a restarted agent knows to look the job's tag up before submitting again;
 * - the spawner starts a queued command only while the agent that queued it is alive: right before
 *   exec (bash, in the child) or the spawn (python), it checks that its parent is still the agent that
 *   started it. When the agent dies (SIGKILL included), the spawner is re-parented at once, so no
 *   queued command starts afterwards, and it exits. (Writing the end marker to a pipe nobody reads
 *   would usually kill it with SIGPIPE first; the check does not depend on that.) What is left is the
 *   instant between the check and exec: a command started then is a command that was running when
 *   the agent died, the case the "submitting" record and the tag lookup were made for;
 * - a queued command can be withdrawn (its request file removed): the spawner then answers `C` and
 *   never starts it. If it had already read the request, the command runs and its outcome is reported
 *   as usual: a withdrawal never turns a command that ran into one that did not;
 * - a spawner killed with commands queued fails all of them as "the spawner died": an unknown outcome,
 *   never a success, for the running one and the queued ones alike.
 *
 * Protocol: the agent writes a request file `<dir>/req-<n>.<seq>` of NUL-terminated fields (no field
 * can hold a NUL, as in argv), then `<seq>` and a newline to the spawner's stdin (bash reads a pipe a
 * byte at a time, a file in blocks):
 *   <seq> NUL <cwd> NUL <env count> NUL <NAME=value>… NUL <cmd> NUL <arg>… NUL
 * The spawner answers on fd 5 with lines `X <seq>` (could not start: no such program or cwd),
 * `C <seq>` (withdrawn, never started) and `D <seq> <wait status>` (128 + n for signal n, as bash
 * says it), in request order. SIGUSR1 / SIGUSR2 to the spawner send TERM / KILL to the running
 * command if the file `<dir>/req-<n>.k<seq>` names it (so a signal meant for a command that just
 * ended never reaches the next one). The command's stdout and stderr are pipes of their own (fds 3
 * and 4), each ended per request (withdrawn ones too) by a marker that holds a random nonce only this
 * process knows, so a command's output can never end another's early.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  accessSync,
  constants,
  existsSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { type LaneCall, laneCall } from "./lane.ts";
import { KILL_GRACE_MS, outputCap } from "./limits.ts";
import { type SpawnerKind, spawnerProgram } from "./spawner-programs.ts";
import type { ExecResult, RunOptions } from "./types.ts";

/** unlink, where a missing file is fine (rmSync would stat it first, through rimraf, per command). */
function removeIfThere(file: string) {
  try {
    unlinkSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      throw err;
    }
  }
}

/** Queueing needs the parent check, which reads /proc (the agent runs on Linux login nodes). */
const canQueue = existsSync(`/proc/${process.pid}/stat`);

/** Names bash will not export as given (read-only or not identifiers): such a request starts directly, whichever the spawner. */
const BASH_OWN = new Set(["BASHOPTS", "SHELLOPTS", "BASH_VERSINFO", "EUID", "PPID", "UID", "BASH_ARGV0"]);

/** True when the spawner can run this request exactly as Node's spawn would. */
export function spawnerCanRun(args: readonly string[], opts: RunOptions): boolean {
  if (opts.input !== undefined) {
    return false; // stdin is /dev/null there; input goes through a direct spawn
  }
  const env = opts.env ?? process.env;
  const fields = [...args, opts.cwd ?? "", ...Object.entries(env).flat()];
  if (fields.some((f) => f?.includes("\0"))) {
    return false;
  }
  return Object.keys(env).every((name) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) && !BASH_OWN.has(name));
}

type Pending = {
  seq: number;
  timeoutMs?: number;
  timedOut: boolean;
  stopOn?: RegExp;
  stopped?: boolean;
  status?: number;
  startFailed?: boolean;
  /** Withdrawn, and the spawner confirmed it never started. */
  withdrawn?: boolean;
  /** A kill file was written for it (removed when it ends). */
  killFile?: boolean;
  ended: { out: boolean; err: boolean };
  out: ReturnType<typeof outputCap>;
  err: ReturnType<typeof outputCap>;
  timers: NodeJS.Timeout[];
  resolve(result: ExecResult): void;
  reject(err: Error): void;
  binary: boolean;
};

let spawnerCount = 0;
let privateDir: string | undefined;

/** One private directory (0700) per agent process for the request files (in memory where /dev/shm is), removed at exit. */
function requestDir(): string {
  if (!privateDir) {
    let base = tmpdir();
    try {
      accessSync("/dev/shm", constants.W_OK | constants.X_OK);
      base = "/dev/shm";
    } catch {}
    removeDeadSiblings(base);
    const dir = mkdtempSync(join(base, `slurmgate-spawn-${process.pid}-`));
    privateDir = dir;
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  }
  return privateDir;
}

/** Directories left by agents that were killed (SIGKILL skips the exit hook), found by their pid. */
export function removeDeadSiblings(base: string) {
  try {
    for (const name of readdirSync(base)) {
      const pid = Number(/^slurmgate-spawn-(\d+)-/.exec(name)?.[1]);
      if (!pid || pid === process.pid) {
        continue;
      }
      try {
        process.kill(pid, 0);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ESRCH") {
          rmSync(join(base, name), { recursive: true, force: true });
        }
      }
    }
  } catch {}
}

/** One spawner process: one command at a time, and more queued behind it in order. */
class Spawner {
  private readonly child: ChildProcess;
  private readonly mark = randomBytes(16).toString("hex");
  /** In the spawner's order: the head is running (or about to start), the rest are queued. */
  private readonly queue: Pending[] = [];
  /** Handed to a caller that has not sent its request yet. */
  reserved = false;
  private seq = 0;
  private control = "";
  dead = false;
  private readonly maxOutputBytes: number;
  private readonly requestFile: string;

  constructor(kind: SpawnerKind, maxOutputBytes: number) {
    this.maxOutputBytes = maxOutputBytes;
    this.requestFile = join(requestDir(), `req-${++spawnerCount}`);
    const [program, args] = spawnerProgram(kind);
    // An empty environment: each command gets exactly the one its request names.
    this.child = spawn(program, args, {
      env: { MARK: this.mark, REQ: this.requestFile },
      stdio: ["pipe", "ignore", "ignore", "pipe", "pipe", "pipe"],
    });
    const [out, err, control] = [3, 4, 5].map((fd) => this.child.stdio[fd] as Readable);
    this.demux(out!, "out");
    this.demux(err!, "err");
    control!.setEncoding("latin1");
    control!.on("data", (text: string) => this.onControl(text));
    this.child.on("error", (e) => this.die(e));
    this.child.on("exit", () => this.die(new Error("the command spawner exited")));
    this.child.stdin!.on("error", (e) => this.die(e));
    this.idle();
  }

  get busy(): boolean {
    return this.reserved || this.queue.length > 0;
  }

  /**
   * Sends a request; it starts when the commands sent before it have ended. `onQueued` gets a
   * function that withdraws it (see the module comment).
   */
  run(cmd: string, args: readonly string[], opts: RunOptions, onQueued?: (withdraw: () => void) => void) {
    const seq = ++this.seq;
    const env = Object.entries(opts.env ?? process.env)
      .filter((e): e is [string, string] => e[1] !== undefined)
      .map(([k, v]) => `${k}=${v}`);
    const fields = [String(seq), opts.cwd ?? "", String(env.length), ...env, cmd, ...args];
    return new Promise<ExecResult>((resolve, reject) => {
      if (this.dead) {
        reject(new Error("the command spawner died before the command was sent; nothing ran"));
        return;
      }
      const p: Pending = {
        seq,
        timeoutMs: opts.timeoutMs,
        timedOut: false,
        ended: { out: false, err: false },
        out: outputCap(this.maxOutputBytes),
        err: outputCap(this.maxOutputBytes),
        timers: [],
        resolve,
        reject,
        binary: Boolean(opts.binary),
        stopOn: opts.stopOn,
      };
      // A new file each time: rewriting one in place makes ext4 flush it on close (auto_da_alloc).
      writeFileSync(`${this.requestFile}.${seq}`, `${fields.join("\0")}\0`, { mode: 0o600, flag: "wx" });
      this.queue.push(p);
      this.busyRef();
      if (this.queue.length === 1) {
        this.begin(p);
      }
      this.child.stdin!.write(`${seq}\n`);
      onQueued?.(() => removeIfThere(`${this.requestFile}.${seq}`));
    });
  }

  /** The command at the head is running (or the spawner is about to start it): its timeout starts now. */
  private begin(p: Pending) {
    if (p.timeoutMs !== undefined) {
      p.timers.push(
        setTimeout(() => {
          p.timedOut = true;
          this.stop(p);
        }, p.timeoutMs),
      );
    }
  }

  private stop(p: Pending) {
    this.signal(p, "SIGTERM");
    p.timers.push(setTimeout(() => this.signal(p, "SIGKILL"), KILL_GRACE_MS));
  }

  /**
   * Asks the spawner to signal the command (USR1: TERM, USR2: KILL), never anything else: it knows
   * its child only between its start and its end, and acts only if the kill file names that command.
   * It sends no "started" message, which saves the agent a wake-up per command while it runs.
   */
  private signal(p: Pending, sig: "SIGTERM" | "SIGKILL") {
    if (this.queue.includes(p) && p.status === undefined && this.child.pid !== undefined) {
      try {
        writeFileSync(`${this.requestFile}.k${p.seq}`, "", { mode: 0o600 });
        p.killFile = true;
        process.kill(this.child.pid, sig === "SIGTERM" ? "SIGUSR1" : "SIGUSR2");
      } catch {}
    }
  }

  private onControl(text: string) {
    this.control += text;
    for (let nl = this.control.indexOf("\n"); nl >= 0; nl = this.control.indexOf("\n")) {
      const [kind, seq, value] = this.control.slice(0, nl).split(" ");
      this.control = this.control.slice(nl + 1);
      const p = this.queue.find((q) => q.seq === Number(seq));
      if (!p) {
        continue;
      }
      if (kind === "D" || kind === "X" || kind === "C") {
        removeIfThere(`${this.requestFile}.${p.seq}`); // read by now, or withdrawn
      }
      if (kind === "X") {
        p.startFailed = true;
      } else if (kind === "D") {
        p.status = Number(value);
      } else if (kind === "C") {
        p.withdrawn = true;
      }
      this.settle();
    }
  }

  /** Splits one output pipe at the end-of-request markers; the spawner ends requests in order. */
  private demux(stream: Readable, which: "out" | "err") {
    const marker = (seq: number) => Buffer.from(`\0${this.mark}${seq}\0`, "latin1");
    let carry = Buffer.alloc(0);
    stream.on("data", (chunk: Buffer) => {
      let data = carry.length ? Buffer.concat([carry, chunk]) : chunk;
      carry = Buffer.alloc(0);
      while (data.length) {
        const p = this.queue.find((q) => !q.ended[which]);
        if (!p) {
          return; // output after every request's marker: a leftover of a process a command left behind
        }
        const m = marker(p.seq);
        const at = data.indexOf(m);
        if (at >= 0) {
          p[which].push(data.subarray(0, at));
          p.ended[which] = true;
          data = data.subarray(at + m.length);
          this.settle();
          continue;
        }
        // Keep a tail that could be the start of a marker split across chunks.
        const keep = Math.min(data.length, m.length - 1);
        p[which].push(data.subarray(0, data.length - keep));
        carry = Buffer.from(data.subarray(data.length - keep));
        if (which === "err" && p.stopOn && !p.stopped && p.stopOn.test(p.err.bytes().toString("utf8") + carry)) {
          p.stopped = true;
          this.stop(p);
        }
        return;
      }
    });
  }

  /** Resolves the requests at the head that the spawner has finished with, in order. */
  private settle() {
    for (let p = this.queue[0]; p; p = this.queue[0]) {
      const answered = p.status !== undefined || p.withdrawn;
      if (!answered || !p.ended.out || !p.ended.err) {
        return;
      }
      this.queue.shift();
      this.finish(p);
      if (this.queue[0]) {
        this.begin(this.queue[0]);
      } else {
        this.idle();
      }
    }
  }

  private finish(p: Pending) {
    for (const t of p.timers) {
      clearTimeout(t);
    }
    if (p.killFile) {
      removeIfThere(`${this.requestFile}.k${p.seq}`);
    }
    if (p.withdrawn) {
      p.reject(Object.assign(new Error("withdrawn before it started; it never ran"), { code: "ECANCELED" }));
      return;
    }
    if (p.startFailed) {
      p.reject(Object.assign(new Error("spawn: no such program or working directory"), { code: "ENOENT" }));
      return;
    }
    const stdoutBytes = p.out.bytes();
    p.resolve({
      // A signal death reads as 128 + n; ours (timeout, stop) is reported as null.
      code: p.timedOut || p.stopped ? null : p.status!,
      stdout: stdoutBytes.toString("utf8"),
      ...(p.binary ? { stdoutBytes } : {}),
      stderr: p.err.bytes().toString("utf8"),
      timedOut: p.timedOut,
      ...(p.stopped ? { stopped: true as const } : {}),
    });
  }

  private die(err: Error) {
    if (this.dead) {
      return;
    }
    this.dead = true;
    for (const p of this.queue.splice(0)) {
      for (const t of p.timers) {
        clearTimeout(t);
      }
      // Running or queued, the command may have run: the caller treats this as an unknown outcome.
      p.reject(new Error(`the command spawner died: ${err.message}`));
    }
    this.child.kill("SIGKILL");
  }

  /** An idle spawner must not keep the agent alive; a busy one must, until its commands end. */
  private idle() {
    this.child.unref();
    for (const s of this.streams()) {
      (s as { unref?: () => void }).unref?.();
    }
  }

  private busyRef() {
    this.child.ref();
    for (const s of this.streams()) {
      (s as { ref?: () => void }).ref?.();
    }
  }

  private streams() {
    return [this.child.stdin, ...[3, 4, 5].map((fd) => this.child.stdio[fd])].filter(Boolean);
  }

  close() {
    this.dead = true;
    this.child.stdin?.end();
  }
}

/**
 * Up to `size` spawners, started on first use; a request waits for a free one. A spawner that died
 * is replaced on the next request. The first command of a lane call (agent/executor/lane.ts) goes to
 * the lane's spawner, queued behind whatever it runs; a lane binds a free spawner on first use.
 */
export function createSpawnerPool(size: number, maxOutputBytes: number, kind: SpawnerKind) {
  const spawners: Spawner[] = [];
  const waiting: (() => void)[] = [];
  const acquire = async (): Promise<Spawner> => {
    for (;;) {
      for (let i = spawners.length - 1; i >= 0; i--) {
        if (spawners[i]!.dead) {
          spawners.splice(i, 1);
        }
      }
      const free = spawners.find((s) => !s.busy) ?? (spawners.length < size ? new Spawner(kind, maxOutputBytes) : null);
      if (free) {
        if (!spawners.includes(free)) {
          spawners.push(free);
        }
        free.reserved = true;
        return free;
      }
      await new Promise<void>((resolve) => waiting.push(resolve));
    }
  };
  const queued = (call: LaneCall) => (withdraw: () => void) => {
    call.cancel = withdraw;
    call.handedOver();
  };
  return {
    async run(cmd: string, args: readonly string[], opts: RunOptions): Promise<ExecResult> {
      // Every command of a lane call goes to the lane's spawner (so no two of the lane ever run at
      // once); the first one tells the caller it is queued, and is the one it may withdraw.
      const call = canQueue ? laneCall() : undefined;
      const first = call && !call.claimed ? call : undefined;
      if (call) {
        call.claimed = true;
        const bound = call.lane.bound;
        if (bound instanceof Spawner && !bound.dead && spawners.includes(bound)) {
          try {
            return await bound.run(cmd, args, opts, first ? queued(first) : undefined);
          } finally {
            if (first) {
              first.cancel = undefined;
            }
            waiting.shift()?.();
          }
        }
      }
      const spawner = await acquire();
      try {
        if (call) {
          call.lane.bound = spawner;
        }
        const running = spawner.run(cmd, args, opts, first ? queued(first) : undefined);
        spawner.reserved = false;
        return await running;
      } finally {
        spawner.reserved = false;
        if (first) {
          first.cancel = undefined;
        }
        waiting.shift()?.();
      }
    },
    close() {
      for (const s of spawners.splice(0)) {
        s.close();
      }
    },
  };
}
