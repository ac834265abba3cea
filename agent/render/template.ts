/**
 * The fixed, versioned job wrapper that follows the `#SBATCH` block.
 *
 * Only the parameter block at the top varies per job, and every value in it is validated and
 * single-quoted. User strings never appear in this text: the wrapper reads them from the NUL
 * data files (data-files.ts). What the wrapper does, in order:
 *  1. traps: on exit or SIGTERM/INT/HUP write `<jobDir>/exitcode[.<task>]` (third source of truth
 *     next to squeue/sacct) and delete the secrets file (not for array tasks: they share it); what
 *     the wrapper itself cannot do (an image missing, a file it cannot read) ends the job with 125
 *     and `<code> <message>` in `<jobDir>/failure[.<task>]`;
 *  2. scrubs its starting environment down to Slurm's own variables and a login baseline;
 *  3. reads argv, env, container env and secrets; checks every env entry is `IDENT=...`;
 *  4. exports SLURMGATE_*, secrets, then the requested env (skipping bash-special names),
 *     enters the working directory and runs the setup lines (the user's own shell) one by one in
 *     this shell; the first that fails ends the job, after writing `<line> <status>` (two numbers,
 *     nothing else) to `<jobDir>/setup-status[.<task>]` so the agent can say which line failed;
 *  5. launches `/usr/bin/env [-u …] -- NAME=value… <payload argv>` in the background and waits,
 *     so the payload gets the requested env byte-exact and signals can be forwarded: TERM/INT/HUP
 *     end the job, USR1/USR2 (the spec's `checkpoint` signal, or anyone's) are passed on and the
 *     wrapper keeps waiting.
 * Every attempt sees the same `SLURMGATE_CHECKPOINT_DIR`: `checkpoint[.<task>]` inside the first
 * attempt's directory, which is `<parent of the job dir>/<job id>` (paths.ts `jobDirName`). The
 * wrapper creates it as the job's own user, and refuses a symlink there.
 * A sweep batch (one array, one element per task) renders the same wrapper with `sg_batch_dir` set:
 * before step 3 the task reads which element it is (job id, attempt, job directory, workdir,
 * secrets file) from `<batch dir>/element.<task>.nul`, checks each field's shape, moves its stdout
 * and stderr to the element's own job directory and from then on is that element, a plain job in
 * its own directory (files without a task suffix).
 * Portable to bash 4.2 (no `mapfile -d`, no `${a[@]}` under `set -u`).
 */
import { shellQuote } from "../executor/quote.ts";
import { noEarlyExportCasePattern } from "./env-policy.ts";

/** Bumped whenever the wrapper's behaviour changes; shown in the script header. */
export const TEMPLATE_VERSION = 4;

/** Values substituted into the parameter block (all validated by the caller). */
export interface TemplateParams {
  jobId: string;
  attempt: number;
  jobDir: string;
  /** The previous attempt's job directory, or null on the first attempt. */
  previousJobDir: string | null;
  workdir: string;
  secretsFile: string | null;
  mode: "command" | "script";
  runtimeArgv: readonly string[];
  images: { x86_64: string | null; aarch64: string | null };
  /**
   * A sweep batch's directory: the element's identity comes from its per-index file there, and
   * `jobDir` (where an early failure's exit file goes) is this directory too.
   */
  batchDir?: string | null;
}

/** Renders the parameter block plus the fixed body. */
export function renderWrapper(p: TemplateParams): string {
  const params = [
    `sg_job_id=${shellQuote(p.jobId)}`,
    `sg_attempt=${shellQuote(String(Math.max(1, Math.floor(p.attempt))))}`,
    `sg_dir=${shellQuote(p.jobDir)}`,
    `sg_previous_dir=${shellQuote(p.previousJobDir ?? "")}`,
    `sg_workdir=${shellQuote(p.workdir)}`,
    `sg_secrets=${shellQuote(p.secretsFile ?? "")}`,
    `sg_mode=${shellQuote(p.mode)}`,
    `sg_runtime=(${p.runtimeArgv.map(shellQuote).join(" ")})`,
    `sg_image_x86_64=${shellQuote(p.images.x86_64 ?? "")}`,
    `sg_image_aarch64=${shellQuote(p.images.aarch64 ?? "")}`,
    `sg_batch_dir=${shellQuote(p.batchDir ?? "")}`,
  ];
  return `${params.join("\n")}\n${BODY.replaceAll("@NO_EARLY_EXPORT@", noEarlyExportCasePattern())}`;
}

// No umask change: the data files are written 0600 by the agent, and the payload keeps the umask
// the user submitted with (Slurm propagates it), so shared results stay group-readable if asked.
const BODY = String.raw`
sg_task=${"$"}{SLURM_ARRAY_TASK_ID:-}
sg_sfx=${"$"}{sg_task:+.$sg_task}
sg_child=

sg_done() {
  trap - EXIT HUP INT TERM
  printf '%s\n' "$1" >"$sg_dir/.exitcode$sg_sfx.tmp" &&
    mv -f -- "$sg_dir/.exitcode$sg_sfx.tmp" "$sg_dir/exitcode$sg_sfx"
  if [[ -n $sg_secrets && -z $sg_task ]]; then rm -f -- "$sg_secrets"; fi
  exit "$1"
}
# What the wrapper itself could not do: a line for the job's stderr, and "<code> <message>" in
# failure[.<task>] for the agent's reason and code (schemas/agent.ts WRAPPER_CODES), exit 125.
sg_fail() {
  printf 'slurmgate: %s\n' "$1" >&2
  printf '%s %s\n' "${"$"}{2:-wrapper_failed}" "$1" >"$sg_dir/failure$sg_sfx" 2>/dev/null
  sg_done 125
}
sg_signal() {
  if [[ -n $sg_child ]]; then
    kill -s "$1" "$sg_child" 2>/dev/null
    wait "$sg_child"
  fi
  sg_done "$2"
}
# A checkpoint signal is for the payload; before it runs (setup lines) there is no one to tell.
sg_pass_on() {
  if [[ -n $sg_child ]]; then kill -s "$1" "$sg_child" 2>/dev/null; fi
  return 0
}
trap 'sg_done $?' EXIT
trap 'sg_signal HUP 129' HUP
trap 'sg_signal INT 130' INT
trap 'sg_signal TERM 143' TERM
trap 'sg_pass_on USR1' USR1
trap 'sg_pass_on USR2' USR2

# Only Slurm's variables (and the GPU selection it sets) and a login baseline survive from the starting environment.
while IFS= read -r sg_n; do
  case $sg_n in
    SLURM_* | SLURMD_NODENAME | HOME | USER | LOGNAME | PATH | SHELL | TMPDIR | LANG | LC_* | TZ | TERM) ;;
    # Device selection the scheduler sets for the GPUs it allocated.
    CUDA_VISIBLE_DEVICES | GPU_DEVICE_ORDINAL | ROCR_VISIBLE_DEVICES | ZE_AFFINITY_MASK) ;;
    *) unset -v "$sg_n" 2>/dev/null ;;
  esac
done < <(compgen -e)
while read -r _ _ sg_n; do unset -f "$sg_n"; done < <(declare -Fx)
export PATH="${"$"}{PATH:-/usr/local/bin:/usr/bin:/bin}"

sg_read() {
  sg_items=()
  [[ -f $1 && -r $1 ]] || sg_fail "cannot read $1"
  local sg_item
  while IFS= read -r -d '' sg_item; do sg_items+=("$sg_item"); done <"$1"
}
sg_check_env() {
  local sg_kv
  for sg_kv in "${"$"}{sg_items[@]}"; do
    [[ $sg_kv == *=* && ${"$"}{sg_kv%%=*} =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || sg_fail "malformed entry in $1"
  done
}

if [[ -n $sg_batch_dir ]]; then
  # A sweep element: which job this task is comes from its per-index file, never from shell text.
  [[ $sg_task =~ ^[0-9]{1,7}$ ]] || sg_fail "not a task of a sweep batch array"
  sg_read "$sg_batch_dir/element.$sg_task.nul"
  if ((${"$"}{#sg_items[@]} != 6)) || [[ ! ${"$"}{sg_items[0]} =~ ^job_[0-9a-z]{20,40}$ ||
    ! ${"$"}{sg_items[1]} =~ ^[1-9][0-9]{0,5}$ || ${"$"}{sg_items[2]} != /?* || ${"$"}{sg_items[4]} != /?* ||
    -n ${"$"}{sg_items[3]} && ${"$"}{sg_items[3]} != /?* || -n ${"$"}{sg_items[5]} && ${"$"}{sg_items[5]} != /?* ]]; then
    sg_fail "malformed $sg_batch_dir/element.$sg_task.nul"
  fi
  sg_job_id=${"$"}{sg_items[0]} sg_attempt=${"$"}{sg_items[1]} sg_dir=${"$"}{sg_items[2]}
  sg_previous_dir=${"$"}{sg_items[3]} sg_workdir=${"$"}{sg_items[4]} sg_secrets=${"$"}{sg_items[5]}
  # From here on the task is a plain job in the element's own directory: no task suffix on its files.
  sg_task= sg_sfx=
  exec >"$sg_dir/stdout" 2>"$sg_dir/stderr" || sg_fail "cannot write logs in $sg_dir"
  if ((${"$"}{#sg_runtime[@]})); then
    sg_runtime+=(--bind "$sg_dir")
    [[ $sg_workdir == "$sg_dir" || $sg_workdir == "$sg_dir"/* ]] || sg_runtime+=(--bind "$sg_workdir")
    sg_runtime+=(--pwd "$sg_workdir")
  fi
fi

sg_read "$sg_dir/env.nul" && sg_check_env "$sg_dir/env.nul"
sg_env=("${"$"}{sg_items[@]}")
sg_cenv=()
sg_image=
if ((${"$"}{#sg_runtime[@]})); then
  sg_read "$sg_dir/container-env.nul" && sg_check_env "$sg_dir/container-env.nul"
  sg_cenv=("${"$"}{sg_items[@]}")
  case $(uname -m) in
    x86_64 | amd64) sg_image=$sg_image_x86_64 ;;
    aarch64 | arm64) sg_image=$sg_image_aarch64 ;;
  esac
  [[ -n $sg_image ]] || sg_fail "the job has no container image for architecture $(uname -m)" image_missing
  if [[ $sg_image == /* && ! ( -f $sg_image && -r $sg_image ) ]]; then
    sg_fail "container image $sg_image does not exist or cannot be read on $(hostname)" image_missing
  fi
fi
if [[ $sg_mode == command ]]; then
  sg_read "$sg_dir/argv.nul"
  sg_payload=("${"$"}{sg_items[@]}")
  ((${"$"}{#sg_payload[@]})) || sg_fail "empty command"
elif ((${"$"}{#sg_runtime[@]})); then
  sg_payload=(bash "$sg_dir/payload.sh")
else
  sg_payload=(/bin/bash "$sg_dir/payload.sh")
fi
sg_secret_env=()
if [[ -n $sg_secrets ]]; then
  sg_read "$sg_secrets" && sg_check_env "$sg_secrets"
  sg_secret_env=("${"$"}{sg_items[@]}")
fi
unset -v sg_items

export SLURMGATE_JOB_ID="$sg_job_id" SLURMGATE_JOB_DIR="$sg_dir" SLURMGATE_RESULT="$sg_dir/result$sg_sfx.json"
export SLURMGATE_ATTEMPT="$sg_attempt"
sg_checkpoint="${"$"}{sg_dir%/*}/$sg_job_id/checkpoint$sg_sfx"
[[ ! -L $sg_checkpoint ]] || sg_fail "$sg_checkpoint is a symlink; refusing it as the checkpoint directory"
mkdir -p -m 0700 -- "$sg_checkpoint" 2>/dev/null
[[ -d $sg_checkpoint && ! -L $sg_checkpoint ]] || sg_fail "cannot create the checkpoint directory $sg_checkpoint"
export SLURMGATE_CHECKPOINT_DIR="$sg_checkpoint"
if ((${"$"}{#sg_runtime[@]})); then
  sg_runtime+=(--bind "$sg_checkpoint")
  if [[ -n $sg_previous_dir ]]; then sg_runtime+=(--bind "$sg_previous_dir:$sg_previous_dir:ro"); fi
fi
if [[ -n $sg_previous_dir ]]; then export SLURMGATE_PREVIOUS_JOB_DIR="$sg_previous_dir"; fi
if [[ -n $sg_secrets ]]; then export SLURMGATE_SECRETS_FILE="$sg_secrets"; fi
# --export=NONE reaches srun steps through SLURM_EXPORT_ENV; steps must see the payload's env.
export SLURM_EXPORT_ENV=ALL
# Secrets go to the environment only through the shell, never onto a command line.
for sg_kv in "${"$"}{sg_secret_env[@]}"; do
  case ${"$"}{sg_kv%%=*} in
    @NO_EARLY_EXPORT@) sg_fail "secret name is reserved" ;;
    *) export "$sg_kv" ;;
  esac
done
# Early export so setup lines can use the requested env; the exact values are re-applied at launch.
for sg_kv in "${"$"}{sg_env[@]}"; do
  case ${"$"}{sg_kv%%=*} in
    @NO_EARLY_EXPORT@) ;;
    *) export "$sg_kv" ;;
  esac
done
unset -v sg_kv sg_n sg_secret_env
readonly sg_job_id sg_dir sg_workdir sg_secrets sg_mode sg_task sg_sfx sg_image sg_env sg_cenv sg_runtime sg_payload
readonly sg_checkpoint
readonly -f sg_done sg_fail sg_signal sg_pass_on

cd -- "$sg_workdir" || sg_fail "cannot enter the working directory"
if [[ -s $sg_dir/setup.nul ]]; then
  sg_read "$sg_dir/setup.nul"
  sg_setup=("${"$"}{sg_items[@]}")
  unset -v sg_items
  readonly sg_setup
  # The user's own shell lines (module load, conda activate), in this shell, before the payload.
  # The loop's word list is fixed before the first line runs: a line cannot renumber the others.
  for sg_line in $(seq 1 ${"$"}{#sg_setup[@]}); do
    eval "${"$"}{sg_setup[sg_line - 1]}"
    sg_rc=$?
    if ((sg_rc != 0)); then
      printf '%d %d\n' "$sg_line" "$sg_rc" >"$sg_dir/setup-status$sg_sfx"
      printf 'slurmgate: setup line %d failed with status %d\n' "$sg_line" "$sg_rc" >&2
      sg_done "$sg_rc"
    fi
  done
  unset -v sg_line sg_rc
  cd -- "$sg_workdir" || sg_fail "cannot enter the working directory"
fi

if ((${"$"}{#sg_runtime[@]})); then
  /usr/bin/env -u BASHOPTS -u SHELLOPTS -- "${"$"}{sg_env[@]}" "${"$"}{sg_cenv[@]}" \
    "${"$"}{sg_runtime[@]}" "$sg_image" "${"$"}{sg_payload[@]}" &
else
  /usr/bin/env -u BASHOPTS -u SHELLOPTS -- "${"$"}{sg_env[@]}" "${"$"}{sg_payload[@]}" &
fi
sg_child=$!
# A passed-on signal interrupts wait (status > 128) while the payload runs on: wait again.
while :; do
  wait "$sg_child"
  sg_rc=$?
  ((sg_rc > 128)) && kill -0 "$sg_child" 2>/dev/null || break
done
sg_done "$sg_rc"
`;
