import { describe, expect, it } from "vitest";
import { buildSinfoArgs, parseGpuGres, parseSinfo, parseSlurmDuration } from "../../agent/slurm/sinfo.ts";
import { parseApptainerVersion, parseSlurmVersion } from "../../agent/slurm/versions.ts";
import { PartitionInfo } from "../../schemas/agent.ts";
import { fixture } from "./helpers/fixtures.ts";

describe("sinfo (real output)", () => {
  it("builds a header-less listing", () => {
    expect(buildSinfoArgs()).toEqual(["-h", "-o", "%P|%a|%D|%l|%c|%m|%G|%s"]);
  });
  it("parses alpha's partitions into schema-valid inventory", () => {
    const parts = parseSinfo(fixture("sinfo-alpha.txt"));
    expect(parts).toEqual([
      {
        name: "cpu",
        default: true,
        state: "up",
        nodes: 1,
        maxTimeSeconds: 3600,
        maxCpusPerNode: 2,
        maxMemMBPerNode: 4000,
        maxNodes: null,
        gpus: [{ type: "a100", count: 2 }],
      },
      {
        name: "short",
        default: false,
        state: "up",
        nodes: 1,
        maxTimeSeconds: 600,
        maxCpusPerNode: 2,
        maxMemMBPerNode: 4000,
        maxNodes: null,
        gpus: [{ type: "a100", count: 2 }],
      },
      {
        name: "gpu",
        default: false,
        state: "up",
        nodes: 1,
        maxTimeSeconds: 7200,
        maxCpusPerNode: 2,
        maxMemMBPerNode: 4000,
        maxNodes: null,
        gpus: [{ type: "a100", count: 2 }],
      },
    ]);
    for (const p of parts) {
      expect(PartitionInfo.safeParse(p).success).toBe(true);
    }
  });
  it("parses beta (h100)", () => {
    expect(parseSinfo(fixture("sinfo-beta.txt")).map((p) => [p.name, p.maxTimeSeconds, p.gpus])).toEqual([
      ["cpu", 3600, [{ type: "h100", count: 1 }]],
      ["gpu", 14400, [{ type: "h100", count: 1 }]],
    ]);
  });
  it("merges several node configurations of one partition", () => {
    const out = parseSinfo(
      "big|up|2|infinite|64|256000|gpu:a100:4(S:0-1)|1-4\nbig|up|3|infinite|128+|512000|gpu:h100:8(S:0),gpu:a100:2|1-4\n",
    );
    expect(out).toEqual([
      {
        name: "big",
        default: false,
        state: "up",
        nodes: 5,
        maxTimeSeconds: null,
        maxCpusPerNode: 128,
        maxMemMBPerNode: 512000,
        maxNodes: 4,
        gpus: [
          { type: "a100", count: 4 },
          { type: "h100", count: 8 },
        ],
      },
    ]);
  });
});

describe("parseSlurmDuration", () => {
  it.each([
    ["1:00:00", 3600],
    ["10:00", 600],
    ["2:00:00", 7200],
    ["1-00:00:00", 86400],
    ["2-12", 216000],
    ["1-02:03", 93780],
    ["30", 1800],
    ["infinite", null],
    ["UNLIMITED", null],
    ["n/a", null],
  ])("%s → %s", (value, seconds) => {
    expect(parseSlurmDuration(value)).toBe(seconds);
  });
});

describe("parseGpuGres", () => {
  it.each([
    ["gpu:a100:2", [{ type: "a100", count: 2 }]],
    ["gpu:a100:2(S:0)", [{ type: "a100", count: 2 }]],
    [
      "gpu:a100:2(S:0,1),gpu:h100:1",
      [
        { type: "a100", count: 2 },
        { type: "h100", count: 1 },
      ],
    ],
    ["gpu:4", [{ type: "", count: 4 }]],
    ["mps:100,gpu:tesla:1", [{ type: "tesla", count: 1 }]],
    ["(null)", []],
  ])("%s", (value, expected) => {
    expect(parseGpuGres(value)).toEqual(expected);
  });
});

describe("versions", () => {
  it("parses real sbatch/scontrol/sinfo --version (Debian prints slurm-wlm)", () => {
    for (const f of ["sbatch-version.txt", "scontrol-version.txt", "sinfo-version.txt"]) {
      expect(parseSlurmVersion(fixture(f))).toBe("22.05.8");
    }
    expect(parseSlurmVersion("slurm 23.11.4\n")).toBe("23.11.4");
    expect(parseSlurmVersion("garbage")).toBeNull();
  });
  it("parses apptainer and singularity versions", () => {
    expect(parseApptainerVersion("apptainer version 1.3.4\n")).toEqual({ runtime: "apptainer", version: "1.3.4" });
    expect(parseApptainerVersion("singularity-ce version 4.1.0\n")).toEqual({
      runtime: "singularity-ce",
      version: "4.1.0",
    });
    expect(parseApptainerVersion("singularity version 3.8.7-1.el8\n")).toEqual({
      runtime: "singularity",
      version: "3.8.7-1.el8",
    });
    expect(parseApptainerVersion("bash: apptainer: command not found")).toBeNull();
  });
});
