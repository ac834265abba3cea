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
 * Services (services.ts) start after step 3, before the payload's secrets and env are exported, so
 * they see neither: each in its own process group, with its own env, secrets and `PORT`, logging to
 * `service-<name>.out/.err`. The wrapper health-checks them with bash alone (/dev/tcp), exports
 * SLURMGATE_SERVICE_<NAME>_URL/_HOST/_PORT, and stops them all (TERM, KILL after 10 s) whenever it
 * ends. One that exits or stays unhealthy before the payload starts ends the job with
 * `service_unhealthy`; one that exits while the payload runs gets the payload a TERM, and the job
 * fails with `service_unhealthy` unless the payload still exits 0. A service with `gpus` takes that
 * many of the allocation's devices (split position-wise from CUDA_VISIBLE_DEVICES and the other
 * device lists Slurm sets); the payload keeps the rest, and a service without a share sees none.
 * Every attempt sees the same `SLURMGATE_CHECKPOINT_DIR`: `checkpoint[.<task>]` inside the first
 * attempt's directory, which is `<parent of the job dir>/<job id>` (paths.ts `jobDirName`). The
 * wrapper creates it as the job's own user, and refuses a symlink there.
 * A sweep batch (one array, one element per task) renders the same wrapper with `sg_batch_dir` set:
 * before step 3 the task reads which element it is (job id, attempt, job directory, workdir,
 * secrets file) from `<batch dir>/element.<task>.nul`, checks each field's shape, moves its stdout
 * and stderr to the element's own job directory and from then on is that element, a plain job in
 * its own directory (files without a task suffix).
 * A launcher (launcher.ts) makes step 5 `srun` the payload on every node: before the setup lines
 * the wrapper takes the first of `scontrol show hostnames "$SLURM_JOB_NODELIST"` as the head node
 * and the last port of the job's own range as its port, exports SLURMGATE_HEAD_NODE,
 * SLURMGATE_HEAD_ADDRESS, SLURMGATE_NNODES, MASTER_ADDR and MASTER_PORT, and runs
 * `srun [--ntasks-per-node=1 …] [container] [torchrun …|ray symmetric-run … --] <payload argv>`;
 * torchrun's `--node_rank` is set on each node from `$SLURM_NODEID` by a fixed shim.
 * Portable to bash 4.2 (no `mapfile -d`, no `${a[@]}` under `set -u`).
 */
import { createHash } from "node:crypto";
import { shellQuote } from "../executor/quote.ts";
import { JOB_ARGV_REFS, SERVICE_OWN_PORT_REF } from "../../schemas/argv-refs.ts";
import { noEarlyExportCasePattern } from "./env-policy.ts";
import { type LauncherParams, portRangeShell } from "./launcher.ts";

/** Bumped whenever the wrapper's behaviour changes; shown in the script header. */
export const TEMPLATE_VERSION = 8;

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
  /** The services' own secrets file (read, then deleted, before the payload starts). */
  serviceSecretsFile?: string | null;
  /** `spec.launcher` as its kind and typed options (launcher.ts); none when omitted. */
  launcher?: LauncherParams | null;
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
    `sg_service_secrets=${shellQuote(p.serviceSecretsFile ?? "")}`,
    `sg_launcher=${shellQuote(p.launcher?.kind ?? "")}`,
    `sg_launcher_opts=(${(p.launcher?.options ?? []).map(shellQuote).join(" ")})`,
  ];
  return `${params.join("\n")}\n${wrapperBody().text}`;
}

/** A fixed text every rendered script ends with, and its sha256 (lowercase hex). */
export type ScriptBody = { text: string; sha256: string };

let body: ScriptBody | undefined;

/**
 * The wrapper's fixed part: the same text for every job of this template version, single or array
 * (22 KB), so it is filled in and hashed once. Every rendered script ends with exactly this text, so
 * a report request sends it once and each script as the head before it (agent/report-request.ts).
 */
export function wrapperBody(): ScriptBody {
  if (!body) {
    const text = BODY.replaceAll("@NO_EARLY_EXPORT@", noEarlyExportCasePattern()).replace(
      "@PORT_RANGE@",
      portRangeShell(),
    );
    body = { text, sha256: createHash("sha256").update(text, "utf8").digest("hex") };
  }
  return body;
}

// No umask change: the data files are written 0600 by the agent, and the payload keeps the umask
// the user submitted with (Slurm propagates it), so shared results stay group-readable if asked.
const BODY = String.raw`
sg_task=${"$"}{SLURM_ARRAY_TASK_ID:-}
sg_sfx=${"$"}{sg_task:+.$sg_task}
sg_child=
sg_sv_pids=()
sg_sv_watch=
# This job's own ports (launcher.ts JOB_PORT_RANGE), by Slurm job id.
@PORT_RANGE@

# Every service's process group gets TERM, and KILL after a grace: nothing outlives the job.
sg_stop_services() {
  local sg_p sg_n sg_alive
  if [[ -n $sg_sv_watch ]]; then
    kill -s KILL "$sg_sv_watch" 2>/dev/null
    wait "$sg_sv_watch" 2>/dev/null
  fi
  ((${"$"}{#sg_sv_pids[@]})) || return 0
  for sg_p in "${"$"}{sg_sv_pids[@]}"; do kill -s TERM -- "-$sg_p" "$sg_p" 2>/dev/null; done
  for sg_n in $(seq 1 20); do
    sg_alive=
    for sg_p in "${"$"}{sg_sv_pids[@]}"; do kill -0 -- "-$sg_p" 2>/dev/null && sg_alive=1; done
    [[ -n $sg_alive ]] || return 0
    sleep 0.5
  done
  for sg_p in "${"$"}{sg_sv_pids[@]}"; do kill -s KILL -- "-$sg_p" "$sg_p" 2>/dev/null; done
}
sg_done() {
  trap - EXIT HUP INT TERM
  sg_stop_services
  # Secrets go before the exit code appears: whoever sees the job ended never finds them still there.
  if [[ -n $sg_secrets && -z $sg_task ]]; then rm -f -- "$sg_secrets"; fi
  printf '%s\n' "$1" >"$sg_dir/.exitcode$sg_sfx.tmp" &&
    mv -f -- "$sg_dir/.exitcode$sg_sfx.tmp" "$sg_dir/exitcode$sg_sfx"
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
# A data file the agent leaves out when it would be empty (render-batch-script.ts RenderedFile
# .optional): missing reads as no items. A dangling symlink there is not "missing": sg_read refuses it.
sg_read_opt() {
  if [[ ! -e $1 && ! -L $1 ]]; then
    sg_items=()
    return 0
  fi
  sg_read "$1"
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

sg_read_opt "$sg_dir/env.nul" && sg_check_env "$sg_dir/env.nul"
sg_env=("${"$"}{sg_items[@]}")
sg_cenv=()
sg_image=
if ((${"$"}{#sg_runtime[@]})); then
  sg_read_opt "$sg_dir/container-env.nul" && sg_check_env "$sg_dir/container-env.nul"
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
  sg_read_opt "$sg_dir/argv.nul"
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
# {SLURMGATE_X} in argv -> the value this wrapper set (schemas/argv-refs.ts), into sg_x: one
# left-to-right pass of plain replacement, so a value is never re-read, split, globbed or evaluated.
# $2 lists the names allowed here; another (the gateway refused it already) fails the expansion.
sg_ref_re='[{](SLURMGATE_[A-Za-z0-9_]*)[}]'
sg_refs='${JOB_ARGV_REFS.join(" ")}'
sg_expand() {
  local sg_rest=$1 sg_m sg_n
  sg_x=
  while [[ $sg_rest =~ $sg_ref_re ]]; do
    sg_m=${"$"}{BASH_REMATCH[0]} sg_n=${"$"}{BASH_REMATCH[1]}
    [[ " $2 " == *" $sg_n "* && -n ${"$"}{!sg_n+set} ]] || return 1
    sg_x+=${"$"}{sg_rest%%"$sg_m"*}${"$"}{!sg_n}
    sg_rest=${"$"}{sg_rest#*"$sg_m"}
  done
  sg_x+=$sg_rest
}
for sg_kv in "${"$"}{sg_env[@]}"; do
  [[ $sg_kv == SLURMGATE_CACHE_*=* ]] && sg_refs+=" ${"$"}{sg_kv%%=*}"
done
if ((${"$"}{#sg_runtime[@]})); then
  sg_runtime+=(--bind "$sg_checkpoint")
  if [[ -n $sg_previous_dir ]]; then sg_runtime+=(--bind "$sg_previous_dir:$sg_previous_dir:ro"); fi
fi
if [[ -n $sg_previous_dir ]]; then export SLURMGATE_PREVIOUS_JOB_DIR="$sg_previous_dir"; fi
# The last bytes of a service's stderr, on one line, for the failure sentence.
sg_tail() {
  if [[ -s $1 ]]; then tail -c 300 -- "$1" 2>/dev/null | tr '\000-\037' ' '; else printf '(empty)'; fi
}
# Does something answer on the port? http: a 2xx/3xx status line to a bare HTTP/1.0 GET (no curl needed).
sg_probe() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    [[ $2 == http ]] || exit 0
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1:%s\r\nConnection: close\r\n\r\n' "$3" "$1" >&3 || exit 1
    IFS= read -r -t 5 sg_line <&3 || exit 1
    [[ $sg_line =~ ^HTTP/[0-9.]+\ [23][0-9][0-9] ]]
  ) 2>/dev/null
}
sg_sv_name=()
if [[ -s $sg_dir/services.nul ]]; then
  sg_read "$sg_dir/services.nul"
  sg_sv=("${"$"}{sg_items[@]}")
  sg_sv_secret_env=()
  if [[ -n $sg_service_secrets ]]; then
    sg_read "$sg_service_secrets" && sg_check_env "$sg_service_secrets"
    sg_sv_secret_env=("${"$"}{sg_items[@]}")
    # Read once into this shell; the payload that runs later finds no file to read them from.
    rm -f -- "$sg_service_secrets"
  fi
  unset -v sg_items
  # Parsed into parallel arrays; a list field is "<start> <count>" into sg_sv.
  sg_sv_port=() sg_sv_kind=() sg_sv_path=() sg_sv_timeout=() sg_sv_image=() sg_sv_gpus=()
  sg_sv_argv=() sg_sv_env=() sg_sv_sec=() sg_sv_rt=()
  sg_i=0 sg_k=0
  sg_list() {
    local sg_c=${"$"}{sg_sv[sg_i]}
    [[ $sg_c =~ ^[0-9]{1,4}$ ]] && ((sg_i + 1 + sg_c <= ${"$"}{#sg_sv[@]})) || sg_fail "malformed $sg_dir/services.nul"
    sg_r="$((sg_i + 1)) $sg_c"
    sg_i=$((sg_i + 1 + sg_c))
  }
  while ((sg_i < ${"$"}{#sg_sv[@]})); do
    ((sg_i + 11 <= ${"$"}{#sg_sv[@]})) && [[ ${"$"}{sg_sv[sg_i]} =~ ^[a-z][a-z0-9-]{0,30}$ &&
      ${"$"}{sg_sv[sg_i + 1]} =~ ^([1-9][0-9]{3,4})?$ && ${"$"}{sg_sv[sg_i + 2]} =~ ^(http|tcp)$ &&
      ${"$"}{sg_sv[sg_i + 4]} =~ ^[1-9][0-9]{0,3}$ && ${"$"}{sg_sv[sg_i + 6]} =~ ^([1-9][0-9]?)?$ ]] ||
      sg_fail "malformed $sg_dir/services.nul"
    sg_sv_name[sg_k]=${"$"}{sg_sv[sg_i]} sg_sv_port[sg_k]=${"$"}{sg_sv[sg_i + 1]} sg_sv_kind[sg_k]=${"$"}{sg_sv[sg_i + 2]}
    sg_sv_path[sg_k]=${"$"}{sg_sv[sg_i + 3]} sg_sv_timeout[sg_k]=${"$"}{sg_sv[sg_i + 4]} sg_sv_image[sg_k]=${"$"}{sg_sv[sg_i + 5]}
    sg_sv_gpus[sg_k]=${"$"}{sg_sv[sg_i + 6]:-0}
    sg_i=$((sg_i + 7))
    sg_list && sg_sv_argv[sg_k]=$sg_r
    sg_list && sg_sv_env[sg_k]=$sg_r
    sg_list && sg_sv_sec[sg_k]=$sg_r
    sg_list && sg_sv_rt[sg_k]=$sg_r
    sg_k=$((sg_k + 1))
  done
  unset -f sg_list
  for sg_k in "${"$"}{!sg_sv_name[@]}"; do
    sg_img=${"$"}{sg_sv_image[sg_k]}
    if [[ $sg_img == /* && ! ( -f $sg_img && -r $sg_img ) ]]; then
      sg_fail "service ${"$"}{sg_sv_name[sg_k]}: container image $sg_img does not exist or cannot be read on $(hostname)" image_missing
    fi
  done
  # Ports: a fixed one must be free; the others come from this job's own range of 32 (by Slurm job
  # id), skipping any in use, so two jobs on one node do not pick the same one.
  sg_base=$(sg_port_base)
  sg_next=$sg_base
  for sg_k in "${"$"}{!sg_sv_name[@]}"; do
    if [[ -n ${"$"}{sg_sv_port[sg_k]} ]]; then
      ! sg_probe "${"$"}{sg_sv_port[sg_k]}" tcp ||
        sg_fail "service ${"$"}{sg_sv_name[sg_k]}: port ${"$"}{sg_sv_port[sg_k]} is already in use on $(hostname)" service_unhealthy
    fi
  done
  for sg_k in "${"$"}{!sg_sv_name[@]}"; do
    [[ -z ${"$"}{sg_sv_port[sg_k]} ]] || continue
    while ((sg_next < sg_base + 32)); do
      sg_p=$sg_next sg_next=$((sg_next + 1))
      [[ " ${"$"}{sg_sv_port[*]} " != *" $sg_p "* ]] && ! sg_probe "$sg_p" tcp && break
      sg_p=
    done
    [[ -n $sg_p ]] || sg_fail "service ${"$"}{sg_sv_name[sg_k]}: no free port in $sg_base-$((sg_base + 31)) on $(hostname)" service_unhealthy
    sg_sv_port[sg_k]=$sg_p
  done
  # GPUs: when a service takes some, each such service gets the next N devices of every list Slurm
  # set for the allocation (CUDA_VISIBLE_DEVICES, the GRES list SLURM_JOB_GPUS, …), the payload keeps
  # the rest, and a service without a share sees none: no two parts share a device.
  sg_gpu_total=0 sg_gpu_vars=
  sg_sv_devs=()
  for sg_k in "${"$"}{!sg_sv_name[@]}"; do
    sg_gpu_total=$((sg_gpu_total + sg_sv_gpus[sg_k]))
    sg_sv_devs[sg_k]=
  done
  if ((sg_gpu_total)); then
    for sg_v in CUDA_VISIBLE_DEVICES GPU_DEVICE_ORDINAL ROCR_VISIBLE_DEVICES ZE_AFFINITY_MASK SLURM_JOB_GPUS SLURM_STEP_GPUS; do
      [[ -n ${"$"}{!sg_v:-} ]] || continue
      [[ ${"$"}{!sg_v} =~ ^[A-Za-z0-9_.:/-]+(,[A-Za-z0-9_.:/-]+)*$ ]] ||
        sg_fail "cannot split the GPUs between services and payload: $sg_v is '${"$"}{!sg_v}' on $(hostname)"
      IFS=, read -r -a sg_devs <<<"${"$"}{!sg_v}"
      ((${"$"}{#sg_devs[@]} >= sg_gpu_total)) ||
        sg_fail "services take $sg_gpu_total GPUs but the allocation has ${"$"}{#sg_devs[@]} ($sg_v=${"$"}{!sg_v}) on $(hostname)"
      sg_o=0
      for sg_k in "${"$"}{!sg_sv_name[@]}"; do
        sg_part=$(IFS=, && printf '%s' "${"$"}{sg_devs[*]:sg_o:sg_sv_gpus[sg_k]}")
        sg_sv_devs[sg_k]+=" $sg_v=$sg_part"
        sg_o=$((sg_o + sg_sv_gpus[sg_k]))
      done
      export "$sg_v=$(IFS=, && printf '%s' "${"$"}{sg_devs[*]:sg_gpu_total}")"
      sg_gpu_vars+=" $sg_v"
    done
    [[ -n $sg_gpu_vars ]] ||
      sg_fail "services take $sg_gpu_total GPUs but Slurm set no device list (CUDA_VISIBLE_DEVICES) on $(hostname)"
  fi
  for sg_k in "${"$"}{!sg_sv_name[@]}"; do
    sg_n=${"$"}{sg_sv_name[sg_k]}
    read -r sg_s sg_c <<<"${"$"}{sg_sv_sec[sg_k]}"
    sg_mine=" ${"$"}{sg_sv[*]:sg_s:sg_c} "
    # Its own process group (set -m), so stopping it stops whatever it started too.
    set -m
    (
      trap - EXIT HUP INT TERM USR1 USR2
      cd -- "$sg_workdir" || exit 125
      # Checked above: each word is NAME=devices without spaces or glob characters.
      for sg_kv in ${"$"}{sg_sv_devs[sg_k]}; do export "$sg_kv"; done
      for sg_kv in "${"$"}{sg_sv_secret_env[@]}"; do
        [[ $sg_mine == *" ${"$"}{sg_kv%%=*} "* ]] && export "$sg_kv"
      done
      read -r sg_s sg_c <<<"${"$"}{sg_sv_env[sg_k]}"
      sg_run=("${"$"}{sg_sv[@]:sg_s:sg_c}")
      read -r sg_s sg_c <<<"${"$"}{sg_sv_rt[sg_k]}"
      if ((sg_c)); then sg_run+=("${"$"}{sg_sv[@]:sg_s:sg_c}" "${"$"}{sg_sv_image[sg_k]}"); fi
      read -r sg_s sg_c <<<"${"$"}{sg_sv_argv[sg_k]}"
      export SLURMGATE_SERVICE_PORT="${"$"}{sg_sv_port[sg_k]}"
      for sg_kv in "${"$"}{sg_env[@]}"; do
        [[ $sg_kv == SLURMGATE_CACHE_*=* ]] && export "$sg_kv"
      done
      for sg_a in "${"$"}{sg_sv[@]:sg_s:sg_c}"; do
        sg_expand "$sg_a" "$sg_refs ${SERVICE_OWN_PORT_REF}" || {
          printf 'slurmgate: a reference in the command is not allowed here: %s\n' "$sg_a" >&2
          exit 125
        }
        sg_run+=("$sg_x")
      done
      exec /usr/bin/env -u BASHOPTS -u SHELLOPTS -- PORT="${"$"}{sg_sv_port[sg_k]}" \
        SLURMGATE_SERVICE_PORT="${"$"}{sg_sv_port[sg_k]}" "${"$"}{sg_run[@]}"
    ) </dev/null >"$sg_dir/service-$sg_n.out" 2>"$sg_dir/service-$sg_n.err" &
    sg_sv_pids[sg_k]=$!
    set +m
  done
  for sg_k in "${"$"}{!sg_sv_name[@]}"; do
    sg_n=${"$"}{sg_sv_name[sg_k]} sg_t0=$SECONDS
    until sg_probe "${"$"}{sg_sv_port[sg_k]}" "${"$"}{sg_sv_kind[sg_k]}" "${"$"}{sg_sv_path[sg_k]}"; do
      sg_what="${"$"}{sg_sv_kind[sg_k]} 127.0.0.1:${"$"}{sg_sv_port[sg_k]}${"$"}{sg_sv_path[sg_k]}"
      if ! kill -0 "${"$"}{sg_sv_pids[sg_k]}" 2>/dev/null; then
        wait "${"$"}{sg_sv_pids[sg_k]}"
        sg_rc=$?
        sg_fail "service $sg_n exited with status $sg_rc after $((SECONDS - sg_t0))s without becoming healthy ($sg_what); stderr: $(sg_tail "$sg_dir/service-$sg_n.err")" service_unhealthy
      fi
      if ((SECONDS - sg_t0 >= sg_sv_timeout[sg_k])); then
        sg_fail "service $sg_n did not become healthy ($sg_what) within ${"$"}{sg_sv_timeout[sg_k]}s; stderr: $(sg_tail "$sg_dir/service-$sg_n.err")" service_unhealthy
      fi
      sleep 0.5
    done
    sg_up=${"$"}{sg_n^^}
    sg_up=${"$"}{sg_up//-/_}
    export "SLURMGATE_SERVICE_${"$"}{sg_up}_URL=http://127.0.0.1:${"$"}{sg_sv_port[sg_k]}" \
      "SLURMGATE_SERVICE_${"$"}{sg_up}_HOST=127.0.0.1" "SLURMGATE_SERVICE_${"$"}{sg_up}_PORT=${"$"}{sg_sv_port[sg_k]}"
    sg_refs+=" SLURMGATE_SERVICE_${"$"}{sg_up}_URL SLURMGATE_SERVICE_${"$"}{sg_up}_HOST SLURMGATE_SERVICE_${"$"}{sg_up}_PORT"
  done
  unset -v sg_sv_secret_env sg_i sg_k sg_n sg_p sg_s sg_c sg_r sg_mine sg_img sg_base sg_next sg_t0 sg_what sg_up
  unset -v sg_gpu_total sg_gpu_vars sg_sv_devs sg_v sg_devs sg_o sg_part
fi
readonly sg_sv_pids sg_sv_name
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
sg_launch=()
if [[ -n $sg_launcher ]]; then
  # Every node is told the same head: the first host of the allocation, and the job's own head port.
  sg_head=$(scontrol show hostnames "${"$"}{SLURM_JOB_NODELIST:-}" 2>/dev/null | head -n 1)
  [[ $sg_head =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] ||
    sg_fail "launcher: cannot find the head node (scontrol show hostnames \$SLURM_JOB_NODELIST gave '$sg_head')"
  sg_nnodes=${"$"}{SLURM_JOB_NUM_NODES:-${"$"}{SLURM_NNODES:-}}
  [[ $sg_nnodes =~ ^[1-9][0-9]{0,5}$ ]] || sg_fail "launcher: Slurm gave no node count (SLURM_JOB_NUM_NODES)"
  sg_srun=$(type -P srun) || sg_fail "launcher: srun is not on PATH on $(hostname)"
  sg_lport=$(sg_port_head)
  export SLURMGATE_HEAD_NODE="$sg_head" SLURMGATE_HEAD_ADDRESS="$sg_head:$sg_lport" SLURMGATE_NNODES="$sg_nnodes"
  export MASTER_ADDR="$sg_head" MASTER_PORT="$sg_lport"
  case $sg_launcher in
    srun) sg_launch=("$sg_srun" --kill-on-bad-exit=1) ;;
    torchrun | ray)
      sg_launch=("$sg_srun" --kill-on-bad-exit=1 --nodes="$sg_nnodes" --ntasks="$sg_nnodes" --ntasks-per-node=1) ;;
    *) sg_fail "launcher: unknown kind" ;;
  esac
fi
readonly sg_launcher sg_launcher_opts sg_launch
if [[ $sg_mode == command ]]; then
  for sg_k in "${"$"}{!sg_payload[@]}"; do
    sg_expand "${"$"}{sg_payload[sg_k]}" "$sg_refs" || sg_fail "command.$sg_k: a reference names no variable slurmgate set for this job"
    sg_payload[sg_k]=$sg_x
  done
  unset -v sg_k sg_x
fi
readonly sg_job_id sg_dir sg_workdir sg_secrets sg_mode sg_task sg_sfx sg_image sg_env sg_cenv sg_runtime sg_payload
readonly sg_checkpoint
readonly -f sg_done sg_fail sg_signal sg_pass_on sg_stop_services

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

sg_run=()
if ((${"$"}{#sg_runtime[@]})); then sg_run=("${"$"}{sg_runtime[@]}" "$sg_image"); fi
if ((${"$"}{#sg_launch[@]})); then
  case $sg_launcher in
    torchrun)
      # torchrun's node rank differs per node: a fixed shim puts $SLURM_NODEID at that argv index.
      sg_at=$((${"$"}{#sg_run[@]} + 2 + ${"$"}{#sg_launcher_opts[@]}))
      sg_run=(/bin/bash -c 'sg_a=("${"$"}{@:2}"); [[ $SLURM_NODEID =~ ^[0-9]+$ ]] || exit 125
sg_a[$1]=--node_rank=$SLURM_NODEID; exec "${"$"}{sg_a[@]}"' slurmgate-node "$sg_at" "${"$"}{sg_run[@]}"
        torchrun --nnodes="$sg_nnodes" "${"$"}{sg_launcher_opts[@]}" --node_rank=0 --rdzv_backend=c10d
        --rdzv_endpoint="$sg_head:$sg_lport" --rdzv_id="slurm-${"$"}{SLURM_JOB_ID:-$$}")
      ;;
    ray) sg_run+=(ray symmetric-run --address "$sg_head:$sg_lport" --min-nodes "$sg_nnodes" "${"$"}{sg_launcher_opts[@]}" --) ;;
  esac
  sg_run=("${"$"}{sg_launch[@]}" "${"$"}{sg_run[@]}")
fi
/usr/bin/env -u BASHOPTS -u SHELLOPTS -- "${"$"}{sg_env[@]}" "${"$"}{sg_cenv[@]}" "${"$"}{sg_run[@]}" "${"$"}{sg_payload[@]}" &
sg_child=$!
if ((${"$"}{#sg_sv_pids[@]})); then
  # A service that dies under a running payload must not leave it waiting on a dead server forever.
  (
    while sleep 1; do
      for sg_i in "${"$"}{!sg_sv_pids[@]}"; do
        if ! kill -0 "${"$"}{sg_sv_pids[sg_i]}" 2>/dev/null; then
          printf '%s\n' "${"$"}{sg_sv_name[sg_i]}" >"$sg_dir/.service-down"
          kill -s TERM "$sg_child" 2>/dev/null
          exit 0
        fi
      done
    done
  ) </dev/null &
  sg_sv_watch=$!
fi
# A passed-on signal interrupts wait (status > 128) while the payload runs on: wait again.
while :; do
  wait "$sg_child"
  sg_rc=$?
  ((sg_rc > 128)) && kill -0 "$sg_child" 2>/dev/null || break
done
if ((sg_rc != 0)) && [[ -s $sg_dir/.service-down ]]; then
  sg_n=$(head -c 40 -- "$sg_dir/.service-down")
  sg_fail "service ${"$"}{sg_n%%$'\n'*} stopped while the payload ran, so the payload was stopped (status $sg_rc); stderr: $(sg_tail "$sg_dir/service-${"$"}{sg_n%%$'\n'*}.err")" service_unhealthy
fi
sg_done "$sg_rc"
`;
