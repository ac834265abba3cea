import { describe, expect, it } from "vitest";
import {
  buildSinfoArgs,
  buildSinfoGpuArgs,
  parseGpuGres,
  parseSinfo,
  parseSinfoGpus,
  parseSlurmDuration,
} from "../../agent/slurm/sinfo.ts";
import { parseApptainerVersion, parseSlurmVersion } from "../../agent/slurm/versions.ts";
import { PartitionInfo } from "../../schemas/agent.ts";
import { fixture } from "./helpers/fixtures.ts";

describe("sinfo (real output)", () => {
  it("builds a header-less listing", () => {
    expect(buildSinfoArgs()).toEqual(["-h", "-o", "%P|%a|%D|%l|%c|%m|%G|%s|%F"]);
    expect(buildSinfoGpuArgs()).toEqual(["-h", "-N", "-O", "NodeHost:|,Partition:|,Gres:|,GresUsed:|,StateCompact:|"]);
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
  it("counts idle nodes from %F, summed over a partition's node configurations", () => {
    const parts = parseSinfo(fixture("sinfo-alpha-counts.txt"));
    expect(parts.map((p) => [p.name, p.idleNodes, p.nodes])).toEqual([
      ["cpu", 0, 1],
      ["short", 0, 1],
      ["gpu", 0, 1],
    ]);
    const merged = parseSinfo(
      "big|up|2|infinite|64|256000|(null)|1-4|1/1/0/2\nbig|up|3|infinite|64|256000|(null)|1-4|0/2/1/3\n",
    );
    expect(merged[0]).toMatchObject({ nodes: 5, idleNodes: 3 });
    // A count that is not A/I/O/T leaves it unknown rather than guessed.
    expect(parseSinfo("p|up|1|1:00|2|4000|(null)|1-infinite|lots\n")[0]?.idleNodes).toBeUndefined();
    for (const p of parts) {
      expect(PartitionInfo.safeParse(p).success).toBe(true);
    }
  });
  it("counts free GPUs per partition and type from real output while one of alpha's two A100s is in use", () => {
    expect(Object.fromEntries(parseSinfoGpus(fixture("sinfo-gpus-alpha-busy.txt")))).toEqual({
      cpu: [{ type: "a100", total: 2, free: 1 }],
      short: [{ type: "a100", total: 2, free: 1 }],
      gpu: [{ type: "a100", total: 2, free: 1 }],
    });
  });
  it("gives no free GPUs on nodes that are down, drained or not responding, and skips garbage", () => {
    const out = parseSinfoGpus(
      [
        "n1|gpu|gpu:h100:8(S:0-1)|gpu:h100:3(IDX:0-2)|mix|",
        "n2|gpu|gpu:h100:8(S:0-1),gpu:l40s:2|gpu:h100:0(IDX:N/A),gpu:l40s:0(IDX:N/A)|drain|",
        "n3|gpu|gpu:h100:8|gpu:h100:0(IDX:N/A)|idle*|",
        "n4|gpu|gpu:h100:8|gpu:h100:0(IDX:N/A)|idle|",
        "not a line",
        "n5|cpu|(null)|(null)|idle|",
      ].join("\n"),
    );
    expect(out.get("gpu")).toEqual([
      { type: "h100", total: 32, free: 13 },
      { type: "l40s", total: 2, free: 0 },
    ]);
    expect(out.get("cpu")).toEqual([]);
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
