/**
 * A small, long-lived bash process that starts the agent's commands for it.
 *
 * Why: Node starts a child with fork(), which copies the page tables of the whole agent and blocks
 * the event loop until the child has exec'd: measured here at 10–40 ms per sbatch under load, more
 * than sbatch itself (bench/RESULTS-agent.md). A 4 MB bash forks in well under a millisecond, and
 * the agent only writes a request to a pipe. The agent keeps a few of them (one command each at a
 * time); each command still gets argv as an array (never shell text), exactly the environment given,
 * a timeout (TERM, then KILL) and its output capped per stream.
 *
 * Protocol: the agent writes a request file `<dir>/req-<n>.<seq>` of NUL-terminated fields (no field
 * can hold a NUL, as in argv), then `<seq>` and a newline to bash's stdin (bash reads a pipe a byte
 * at a time, a file in blocks):
 *   <seq> NUL <cwd> NUL <env count> NUL <NAME=value>… NUL <cmd> NUL <arg>… NUL
 * bash answers on fd 5 with lines `X <seq>` (could not start: no such program or cwd) and
 * `D <seq> <wait status>`; SIGUSR1 / SIGUSR2 to bash send TERM / KILL to the running command. The command's stdout and stderr are pipes of their own
 * (fds 3 and 4), each ended per command by a marker that holds a random nonce only this process
 * knows, so a command's output can never end another's early.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, constants, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { KILL_GRACE_MS, outputCap } from "./limits.ts";
import type { ExecResult, RunOptions } from "./types.ts";

const SERVER = String.raw`
c=
trap '[[ -n $c ]] && kill -TERM "$c" 2>/dev/null' USR1
trap '[[ -n $c ]] && kill -KILL "$c" 2>/dev/null' USR2
while IFS= read -r q; do
  mapfile -d '' -t r <"$REQ.$q"
  seq=@{r[0]} cwd=@{r[1]} ne=@{r[2]}
  cmd=@{r[3 + ne]}
  (
    unset PWD OLDPWD SHLVL MARK REQ
    if [[ -n $cwd ]] && ! cd -- "$cwd" 2>/dev/null; then printf 'X %s\n' "$seq" >&5; exit 127; fi
    ((ne == 0)) || export -- "@{r[@]:3:ne}"
    p=
    if [[ $cmd == */* ]]; then
      [[ -f $cmd && -x $cmd ]] && p=$cmd
    else
      IFS=: && set -f
      for d in @{PATH:-/usr/bin:/bin}; do
        [[ -f @{d:-.}/$cmd && -x @{d:-.}/$cmd ]] && { p=@{d:-.}/$cmd; break; }
      done
    fi
    [[ -n $p ]] || { printf 'X %s\n' "$seq" >&5; exit 127; }
    exec -a "$cmd" -- "$p" "@{r[@]:4 + ne}" 3>&- 4>&- 5>&-
  ) </dev/null >&3 2>&4 &
  c=$!
  while :; do
    wait "$c"
    st=$?
    kill -0 "$c" 2>/dev/null || break # a trap (a kill asked for) interrupted wait: wait again
  done
  c=
  printf '\0%s%s\0' "$MARK" "$seq" >&3
  printf '\0%s%s\0' "$MARK" "$seq" >&4
  printf 'D %s %s\n' "$seq" "$st" >&5
done
`.replaceAll("@{", "${"); // @{ stands for bash's ${ in this template

/** Names bash will not export as given (read-only or not identifiers): such a request starts directly. */
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
  timedOut: boolean;
  stopOn?: RegExp;
  stopped?: boolean;
  status?: number;
  startFailed?: boolean;
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

/** One bash process: one command at a time. */
class Spawner {
  private readonly child: ChildProcess;
  private readonly mark = randomBytes(16).toString("hex");
  private pending: Pending | undefined;
  /** Handed to a caller that has not sent its request yet. */
  reserved = false;
  private seq = 0;
  private control = "";
  dead = false;
  private readonly maxOutputBytes: number;
  private readonly requestFile: string;

  constructor(maxOutputBytes: number) {
    this.maxOutputBytes = maxOutputBytes;
    this.requestFile = join(requestDir(), `req-${++spawnerCount}`);
    // An empty environment: each command gets exactly the one its request names.
    this.child = spawn("/bin/bash", ["--noprofile", "--norc", "-c", SERVER], {
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
    return this.reserved || this.pending !== undefined;
  }

  run(cmd: string, args: readonly string[], opts: RunOptions): Promise<ExecResult> {
    const seq = ++this.seq;
    const env = Object.entries(opts.env ?? process.env)
      .filter((e): e is [string, string] => e[1] !== undefined)
      .map(([k, v]) => `${k}=${v}`);
    const fields = [String(seq), opts.cwd ?? "", String(env.length), ...env, cmd, ...args];
    return new Promise((resolve, reject) => {
      if (this.dead) {
        reject(new Error("the command spawner died before the command was sent; nothing ran"));
        return;
      }
      const p: Pending = {
        seq,
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
      this.pending = p;
      this.busyRef();
      if (opts.timeoutMs !== undefined) {
        p.timers.push(
          setTimeout(() => {
            p.timedOut = true;
            this.stop(p);
          }, opts.timeoutMs),
        );
      }
      // A new file each time: rewriting one in place makes ext4 flush it on close (auto_da_alloc).
      writeFileSync(`${this.requestFile}.${seq}`, `${fields.join("\0")}\0`, { mode: 0o600, flag: "wx" });
      this.child.stdin!.write(`${seq}\n`);
    });
  }

  private stop(p: Pending) {
    this.signal(p, "SIGTERM");
    p.timers.push(setTimeout(() => this.signal(p, "SIGKILL"), KILL_GRACE_MS));
  }

  /**
   * Asks bash to signal the command (USR1: TERM, USR2: KILL), never anything else: bash knows its
   * child only between its start and its end. Bash sends no "started" message, which saves the
   * agent a wake-up per command while the command runs.
   */
  private signal(p: Pending, sig: "SIGTERM" | "SIGKILL") {
    if (this.pending === p && p.status === undefined && this.child.pid !== undefined) {
      try {
        process.kill(this.child.pid, sig === "SIGTERM" ? "SIGUSR1" : "SIGUSR2");
      } catch {}
    }
  }

  private onControl(text: string) {
    this.control += text;
    for (let nl = this.control.indexOf("\n"); nl >= 0; nl = this.control.indexOf("\n")) {
      const [kind, seq, value] = this.control.slice(0, nl).split(" ");
      this.control = this.control.slice(nl + 1);
      const p = this.pending;
      if (!p || Number(seq) !== p.seq) {
        continue;
      }
      if (kind === "D" || kind === "X") {
        rmSync(`${this.requestFile}.${p.seq}`, { force: true }); // read by now
      }
      if (kind === "X") {
        p.startFailed = true;
      } else if (kind === "D") {
        p.status = Number(value);
      }
      this.settle();
    }
  }

  /** Splits one output pipe at this process's end-of-command markers. */
  private demux(stream: Readable, which: "out" | "err") {
    const marker = (seq: number) => Buffer.from(`\0${this.mark}${seq}\0`, "latin1");
    let carry = Buffer.alloc(0);
    stream.on("data", (chunk: Buffer) => {
      let data = carry.length ? Buffer.concat([carry, chunk]) : chunk;
      carry = Buffer.alloc(0);
      while (data.length) {
        const p = this.pending;
        if (!p || p.ended[which]) {
          return; // output after a command's marker: a leftover of a process it left behind
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

  private settle() {
    const p = this.pending;
    if (!p || p.status === undefined || !p.ended.out || !p.ended.err) {
      return;
    }
    this.pending = undefined;
    for (const t of p.timers) {
      clearTimeout(t);
    }
    this.idle();
    if (p.startFailed) {
      p.reject(Object.assign(new Error("spawn: no such program or working directory"), { code: "ENOENT" }));
      return;
    }
    const stdoutBytes = p.out.bytes();
    p.resolve({
      // A signal death reads as 128 + n from bash; ours (timeout, stop) is reported as null.
      code: p.timedOut || p.stopped ? null : p.status,
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
    const p = this.pending;
    this.pending = undefined;
    if (p) {
      for (const t of p.timers) {
        clearTimeout(t);
      }
      // The command may have run: the caller's error path treats this as an unknown outcome.
      p.reject(new Error(`the command spawner died: ${err.message}`));
    }
    this.child.kill("SIGKILL");
  }

  /** An idle spawner must not keep the agent alive; a busy one must, until its command ends. */
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
 * is replaced on the next request.
 */
export function createSpawnerPool(size: number, maxOutputBytes: number) {
  const spawners: Spawner[] = [];
  const waiting: (() => void)[] = [];
  const acquire = async (): Promise<Spawner> => {
    for (;;) {
      for (let i = spawners.length - 1; i >= 0; i--) {
        if (spawners[i]!.dead) {
          spawners.splice(i, 1);
        }
      }
      const free = spawners.find((s) => !s.busy) ?? (spawners.length < size ? new Spawner(maxOutputBytes) : null);
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
  return {
    async run(cmd: string, args: readonly string[], opts: RunOptions): Promise<ExecResult> {
      const spawner = await acquire();
      try {
        const running = spawner.run(cmd, args, opts);
        spawner.reserved = false;
        return await running;
      } finally {
        spawner.reserved = false;
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
