/**
 * The Apptainer part of a job: runtime argv and per-architecture images, all validated.
 *
 * Container env is NOT passed with `--env-file`: Apptainer evaluates that file with a shell
 * interpreter, which would re-open the injection door. Instead the wrapper hands it to Apptainer
 * in the host environment (`/usr/bin/env NAME=value apptainer exec …`), which Apptainer forwards
 * into the container unchanged (we never use --cleanenv). Names starting with APPTAINER or
 * SINGULARITY are refused in env-policy.ts so users cannot configure the runtime itself.
 */
import type { JobSpec } from "../../schemas/job.ts";
import { ABSOLUTE_PATH, IMAGE_REF } from "../../schemas/patterns.ts";
import { RenderError, requireMatch } from "./errors.ts";

/** What the wrapper needs to launch a container. */
export interface ContainerPlan {
  /** `[apptainerBin, "exec", ...flags]`; the image and the payload argv follow it. */
  runtimeArgv: string[];
  /** Image per `uname -m`; null when the job has none for that architecture. */
  images: { x86_64: string | null; aarch64: string | null };
}

export const PROGRAM_NAME = /^[A-Za-z0-9_.+-]{1,64}$/;

/**
 * Builds the runtime argv for `spec.container`.
 * @example
 * planContainer(spec, { apptainerBin: "apptainer", jobDir: "/s/u/job_x", workdir: "/s/u/job_x" })
 * // => { runtimeArgv: ["apptainer", "exec", "--bind", "/s/u/job_x", "--pwd", "/s/u/job_x"], images: {...} }
 */
export function planContainer(
  spec: JobSpec,
  where: {
    apptainerBin: string;
    jobDir: string;
    workdir: string;
    /** A sweep batch: the wrapper adds each element's own job directory, workdir and --pwd itself. */
    perElement?: boolean;
  },
): ContainerPlan | null {
  const c = spec.container;
  if (c === undefined) {
    return null;
  }
  if (!ABSOLUTE_PATH.test(where.apptainerBin) && !PROGRAM_NAME.test(where.apptainerBin)) {
    throw new RenderError("policy_rejected", "apptainerBin: not an absolute path or a program name", "apptainerBin");
  }
  const argv = [where.apptainerBin, "exec"];
  if (c.gpu ?? spec.resources.gpus !== undefined) {
    argv.push("--nv");
  }
  if (!c.mountHome) {
    argv.push("--no-home");
  }
  c.binds.forEach((bind, i) => {
    const src = requireMatch(bind.src, ABSOLUTE_PATH, `container.binds.${i}.src`, "path_outside_roots");
    const dst = requireMatch(bind.dst ?? bind.src, ABSOLUTE_PATH, `container.binds.${i}.dst`);
    argv.push("--bind", `${src}:${dst}${bind.readonly ? ":ro" : ""}`);
  });
  if (!where.perElement) {
    // The job directory holds payload.sh, result.json and the secrets file: always visible inside.
    argv.push("--bind", where.jobDir);
    if (!isWithin(where.workdir, where.jobDir)) {
      argv.push("--bind", where.workdir);
    }
    argv.push("--pwd", where.workdir);
  }

  const image = (value: string | undefined, field: string) =>
    value === undefined ? null : requireMatch(value, IMAGE_REF, field);
  const images =
    c.image !== undefined
      ? { x86_64: image(c.image, "container.image"), aarch64: image(c.image, "container.image") }
      : {
          x86_64: image(c.images?.x86_64, "container.images.x86_64"),
          aarch64: image(c.images?.aarch64, "container.images.aarch64"),
        };
  if (images.x86_64 === null && images.aarch64 === null) {
    throw new RenderError("invalid_spec", "container: no image given", "container.image");
  }
  return { runtimeArgv: argv, images };
}

function isWithin(p: string, root: string): boolean {
  return p === root || p.startsWith(`${root}/`);
}
