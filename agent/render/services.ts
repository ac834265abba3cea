/**
 * The services a job starts beside its payload (`spec.services`), as one NUL data file the
 * wrapper reads: no user string (argv, env value, health path, bind) becomes shell text.
 *
 * `services.nul` holds, per service in order: name, port ("" = the wrapper picks one), health
 * kind (`http`|`tcp`), health path ("" for tcp), timeout seconds, image ("" without a container),
 * GPUs it takes from the job's ("" = none of its own), then four counted lists — argv, `NAME=value` env, secret names, runtime argv (Apptainer's
 * `exec`/`run` and its flags; empty without a container) — each as `<count>` then the items.
 * Service secrets go to a separate 0600 file (`service-secrets.nul`, see agent/secrets.ts) that the
 * wrapper reads and deletes before the payload starts, so the payload can neither inherit nor read them.
 */
import { type JobSpec, SERVICE_NAME, type Service, serviceGpuIssue } from "../../schemas/job.ts";
import { ABSOLUTE_PATH, IMAGE_REF } from "../../schemas/patterns.ts";
import { PROGRAM_NAME } from "./container.ts";
import { checkEnvMap, checkSecretNames } from "./env-policy.ts";
import { RenderError, requireMatch } from "./errors.ts";

export const SERVICE_SECRETS_FILE = "service-secrets.nul";

/** Every secret name any service asks for (each once): what the agent writes to {@link SERVICE_SECRETS_FILE}. */
export function serviceSecretNames(spec: Pick<JobSpec, "services">): string[] {
  return [...new Set((spec.services ?? []).flatMap((s) => s.secrets))].sort();
}

/**
 * The items of `services.nul` (empty when the job has no services); throws {@link RenderError}.
 * @example
 * serviceItems(spec, { apptainerBin: "apptainer", jobDir: "/s/u/job_x", workdir: "/s/u/job_x" })
 * // => ["api", "", "http", "/health", "30", "", "", "3", "node", "-e", "…", "0", "0", "0"]
 */
export function serviceItems(
  spec: JobSpec,
  where: { apptainerBin: string; jobDir: string; workdir: string },
): string[] {
  const items: string[] = [];
  const gpuIssue = serviceGpuIssue(spec, true);
  if (gpuIssue) {
    const field = gpuIssue.path.join(".");
    throw new RenderError("invalid_spec", `${field}: ${gpuIssue.message}`, field);
  }
  (spec.services ?? []).forEach((svc, i) => {
    const field = `services.${i}`;
    checkEnvMap(svc.env, `${field}.env`);
    checkSecretNames(svc.secrets, svc.env);
    const argv = svc.container ? (svc.container.command ?? []) : (svc.command ?? []);
    argv.forEach((arg, j) => {
      if (/\p{Cs}/u.test(arg)) {
        throw new RenderError(
          "invalid_spec",
          `${field}.command.${j}: not well-formed Unicode`,
          `${field}.command.${j}`,
        );
      }
    });
    if (!svc.container && (argv[0] ?? "").includes("=")) {
      throw new RenderError(
        "invalid_spec",
        `${field}.command.0: the program name must not contain '='`,
        `${field}.command.0`,
      );
    }
    const image = svc.container ? requireMatch(svc.container.image, IMAGE_REF, `${field}.container.image`) : "";
    const health = "http" in svc.health ? ["http", svc.health.http] : ["tcp", ""];
    const env = Object.keys(svc.env)
      .sort()
      .map((name) => `${name}=${svc.env[name]}`);
    const gpus = svc.gpus === undefined ? "" : String(svc.gpus);
    items.push(
      svc.name,
      svc.port === undefined ? "" : String(svc.port),
      ...health,
      String(svc.timeoutSeconds),
      image,
      gpus,
    );
    for (const list of [argv, env, svc.secrets, runtimeArgv(spec, svc, field, where)]) {
      items.push(String(list.length), ...list);
    }
  });
  return items;
}

/** Apptainer's argv for a service's own container, up to the image; empty without one. */
function runtimeArgv(
  spec: JobSpec,
  svc: Service,
  field: string,
  where: { apptainerBin: string; jobDir: string; workdir: string },
): string[] {
  if (!svc.container) {
    return [];
  }
  if (!ABSOLUTE_PATH.test(where.apptainerBin) && !PROGRAM_NAME.test(where.apptainerBin)) {
    throw new RenderError("policy_rejected", "apptainerBin: not an absolute path or a program name", "apptainerBin");
  }
  const argv = [where.apptainerBin, svc.container.command ? "exec" : "run"];
  if (spec.resources.gpus !== undefined) {
    argv.push("--nv");
  }
  svc.binds.forEach((bind, j) => {
    const src = requireMatch(bind.src, ABSOLUTE_PATH, `${field}.binds.${j}.src`, "path_outside_roots");
    const dst = requireMatch(bind.dst ?? bind.src, ABSOLUTE_PATH, `${field}.binds.${j}.dst`);
    argv.push("--bind", `${src}:${dst}${bind.readonly ? ":ro" : ""}`);
  });
  argv.push("--bind", where.jobDir);
  if (where.workdir !== where.jobDir && !where.workdir.startsWith(`${where.jobDir}/`)) {
    argv.push("--bind", where.workdir);
  }
  argv.push("--pwd", where.workdir);
  return argv;
}

/**
 * The service names in a `services.nul` (the agent ships their logs); [] when it is malformed.
 * @example serviceNamesOf(["api", "", "tcp", "", "5", "", "", "1", "x", "0", "0", "0"]) // => ["api"]
 */
export function serviceNamesOf(items: readonly string[]): string[] {
  const names: string[] = [];
  let i = 0;
  while (i < items.length) {
    const name = items[i] ?? "";
    if (!SERVICE_NAME.test(name)) {
      return [];
    }
    names.push(name);
    i += 7;
    for (let list = 0; list < 4; list++) {
      const count = Number(items[i]);
      if (!Number.isInteger(count) || count < 0) {
        return [];
      }
      i += 1 + count;
    }
  }
  return i === items.length ? names : [];
}
