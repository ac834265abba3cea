/**
 * The programs a command spawner (agent/executor/spawner.ts) can be, both speaking its protocol.
 *
 * - **python**: python3's `os.posix_spawn`. glibc starts the child with vfork semantics, so nothing of
 *   the spawner is copied: a command costs about what its own exec costs. Measured on this project's
 *   2-vCPU VM (bench/RESULTS-agent.md, stop 30), where a page fault costs 15–50 us, it took sequential
 *   submission from 0.77–0.78 to 1.08–1.11 of a bash `sbatch` loop.
 * - **bash**: fork, then exec in the child; on any Linux. The child copies every page either side
 *   writes before exec (~180 page faults per command against the loop's 90).
 *
 * `auto` (the default) takes python where `/usr/bin/python3` has `os.posix_spawn` (3.8 and later), and
 * bash otherwise. The interpreter is a fixed path, never looked up in PATH: the spawner must be the
 * agent's own child (its queued commands start only while that parent lives), and a wrapper such as
 * a pyenv shim could put a process in between.
 */
import { spawnSync } from "node:child_process";

export const SPAWNER_CHOICES = ["auto", "python", "bash"] as const;
export type SpawnerChoice = (typeof SPAWNER_CHOICES)[number];
export type SpawnerKind = Exclude<SpawnerChoice, "auto">;

export const SPAWNER_PYTHON = "/usr/bin/python3";

/**
 * bash: the request's fields in an array (mapfile), the command in a subshell that exports the
 * request's environment, checks the agent is alive and execs. bash keeps `$!` and waits.
 */
const BASH_SERVER = String.raw`
c= cs=
pp=$PPID
# Kept, but never exported: each command gets exactly the environment its request names.
mark=$MARK req=$REQ
export -n MARK REQ PWD OLDPWD SHLVL
trap '[[ -n $c && -e $req.k$cs ]] && kill -TERM "$c" 2>/dev/null' USR1
trap '[[ -n $c && -e $req.k$cs ]] && kill -KILL "$c" 2>/dev/null' USR2
alive() { # this bash's parent is still the agent that started it (field 4 of /proc/<pid>/stat)
  local s
  read -r s </proc/$$/stat || return 1
  s=@{s##*) } && s=@{s#* }
  [[ @{s%% *} == "$pp" ]]
}
end() {
  printf '\0%s%s\0' "$mark" "$1" >&3
  printf '\0%s%s\0' "$mark" "$1" >&4
}
# On a virtual machine a page fault can cost ~50 us, and each page bash or its child writes between
# fork and exec is one (bench/RESULTS-agent.md): each check is made once, where it counts.
while IFS= read -r q; do
  if ! { mapfile -d '' -t r <"$req.$q"; } 2>/dev/null; then
    end "$q" && printf 'C %s\n' "$q" >&5 # withdrawn before it started
    continue
  fi
  seq=@{r[0]} cwd=@{r[1]} ne=@{r[2]}
  cmd=@{r[3 + ne]}
  cs=$seq
  (
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
    alive || exit 125 # the agent died: start nothing it queued
    exec -a "$cmd" -- "$p" "@{r[@]:4 + ne}" 3>&- 4>&- 5>&-
  ) </dev/null >&3 2>&4 &
  c=$!
  while :; do
    wait "$c"
    st=$?
    # Above 128, a trap (a kill asked for) may have interrupted wait: then wait again.
    ((st > 128)) && kill -0 "$c" 2>/dev/null || break
  done
  ((st != 125)) || alive || exit 0 # the agent died: bash goes too
  c= cs=
  end "$seq"
  printf 'D %s %s\n' "$seq" "$st" >&5
done
`.replaceAll("@{", "${"); // @{ stands for bash's ${ in this template

/**
 * python: the same protocol, the command started with posix_spawn. The aliveness check is made in
 * the server right before the spawn (the vfork'd child execs at once, so the window is the same as
 * bash's check-then-exec). Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored
 * across exec: both go back to their defaults for the command, and SIGPIPE and SIGINT for the server
 * itself, as in bash.
 */
const PYTHON_SERVER = String.raw`
import errno, os, signal, sys
mark, req, pp = os.environb[b"MARK"], os.environb[b"REQ"], os.getppid()
home = os.open(".", os.O_RDONLY)
c = kill_file = None
def relay(sig):
    def handler(_signum, _frame):
        if c is not None and os.path.exists(kill_file):
            try:
                os.kill(c, sig)
            except OSError:
                pass
    return handler
signal.signal(signal.SIGUSR1, relay(signal.SIGTERM))
signal.signal(signal.SIGUSR2, relay(signal.SIGKILL))
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
signal.signal(signal.SIGINT, signal.SIG_DFL)
for fd in (3, 4, 5):
    os.set_inheritable(fd, False)
null = os.open("/dev/null", os.O_RDONLY)
to_command = [(os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, 3, 1), (os.POSIX_SPAWN_DUP2, 4, 2)]
defaults = (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT)
def end(q):
    os.write(3, b"\0" + mark + q + b"\0")
    os.write(4, b"\0" + mark + q + b"\0")
def answer(*words):
    os.write(5, b" ".join(words) + b"\n")
def program(cmd, path):
    for p in [cmd] if b"/" in cmd else [(d or b".") + b"/" + cmd for d in path.split(b":")]:
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    return None
def exit_status(s):
    return 128 + os.WTERMSIG(s) if os.WIFSIGNALED(s) else os.WEXITSTATUS(s)
for line in sys.stdin.buffer:
    q = line.rstrip(b"\n")
    try:
        with open(req + b"." + q, "rb") as f:
            r = f.read().split(b"\0")
    except OSError:
        end(q)
        answer(b"C", q)  # withdrawn before it started
        continue
    seq, cwd, ne = r[0], r[1], int(r[2])
    env = dict(e.split(b"=", 1) for e in r[3 : 3 + ne])
    cmd, args = r[3 + ne], r[4 + ne : -1]
    st, p = 127, None
    try:
        os.fchdir(home)  # a relative cwd is taken from where the agent started, as bash's subshell does
        if cwd:
            os.chdir(cwd)
        p = program(cmd, env.get(b"PATH") or b"/usr/bin:/bin")
    except OSError:
        pass
    if p is not None and os.getppid() != pp:
        sys.exit(0)  # the agent died: start nothing it queued
    kill_file = req + b".k" + seq
    try:
        if p is None:
            raise FileNotFoundError(cmd)
        try:
            c = os.posix_spawn(p, [cmd, *args], env, file_actions=to_command, setsigdef=defaults)
        except OSError as e:
            if e.errno != errno.ENOEXEC:
                raise
            # No #! line: run it with /bin/sh, as execvp (and so Node's spawn and bash) would.
            c = os.posix_spawn(b"/bin/sh", [b"/bin/sh", p, *args], env, file_actions=to_command, setsigdef=defaults)
    except OSError:
        answer(b"X", seq)  # never started: no such program or cwd, or exec refused it
    else:
        st = exit_status(os.waitpid(c, 0)[1])
        c = None
    end(seq)
    answer(b"D", seq, str(st).encode())
`;

const pythonUsable = new Map<string, boolean>();

/** Whether a python3 has what the python server needs; asked once per agent process. */
export function pythonSpawnerUsable(python = SPAWNER_PYTHON): boolean {
  let usable = pythonUsable.get(python);
  if (usable === undefined) {
    const check = "import os; os.posix_spawn; os.POSIX_SPAWN_DUP2";
    usable = spawnSync(python, ["-I", "-S", "-c", check], { stdio: "ignore", env: {}, timeout: 10_000 }).status === 0;
    pythonUsable.set(python, usable);
  }
  return usable;
}

/** The spawner a choice comes to on this machine; `python` where it cannot run is an error, never bash in its place. */
export function spawnerKind(choice: SpawnerChoice, python = SPAWNER_PYTHON): SpawnerKind {
  if (choice === "bash") {
    return "bash";
  }
  if (pythonSpawnerUsable(python)) {
    return "python";
  }
  if (choice === "python") {
    throw new Error(
      `SLURMGATE_SPAWNER=python: ${python} is missing or has no os.posix_spawn (Python 3.8 or later); set auto or bash`,
    );
  }
  return "bash";
}

/** The program and arguments that start a spawner of this kind. */
export function spawnerProgram(kind: SpawnerKind): [string, string[]] {
  return kind === "python"
    ? [SPAWNER_PYTHON, ["-I", "-S", "-c", PYTHON_SERVER]]
    : ["/bin/bash", ["--noprofile", "--norc", "-c", BASH_SERVER]];
}
