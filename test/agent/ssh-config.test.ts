/**
 * SSH mode's configuration: deploy/agent.env.example documents every variable and parses, and the
 * SSH executor is never built without a pinned host key.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { AgentConfig, parseAgentConfig, parseEnvFile } from "../../agent/config.ts";
import { fingerprintOf, sshExecutorFromConfig } from "../../agent/executor/ssh.ts";

const REPO = join(import.meta.dirname, "..", "..");
const example = readFileSync(join(REPO, "deploy/agent.env.example"), "utf8");

describe("deploy/agent.env.example", () => {
  it("names every config variable and parses with all of them set", () => {
    const uncommented = parseEnvFile(example.replace(/^#(SLURM)/gm, "$1"));
    expect(Object.keys(uncommented).sort()).toEqual(Object.keys(AgentConfig.shape).sort());
    const config = parseAgentConfig(uncommented);
    expect(config.SLURMGATE_SSH_HOST).toBe("login1.cluster.example.org");
    expect(config.SLURMGATE_SHARED_ROOTS).toEqual(["/scratch/slurmgate", "/home"]);
  });

  it("parses as given (local mode)", () => {
    expect(parseAgentConfig(parseEnvFile(example)).SLURMGATE_SSH_HOST).toBeUndefined();
  });
});

describe("sshExecutorFromConfig", () => {
  const base = { SLURMGATE_SSH_PORT: 22, SLURMGATE_COMMAND_TIMEOUT_SECONDS: 60, SLURMGATE_SSH_HOST: "login1" };

  it("refuses to build without a pinned host key", () => {
    expect(() => sshExecutorFromConfig(base, { SSH_AUTH_SOCK: "/tmp/agent.sock", USER: "u" })).toThrow(
      /SLURMGATE_SSH_HOST_KEY is required/,
    );
  });

  it("refuses without a key or an ssh-agent", () => {
    const hostKey = fingerprintOf(Buffer.from("k"));
    expect(() => sshExecutorFromConfig({ ...base, SLURMGATE_SSH_HOST_KEY: hostKey }, { USER: "u" })).toThrow(
      /SLURMGATE_SSH_KEY .* or an ssh-agent/,
    );
  });

  it("computes fingerprints as ssh-keygen does (SHA256, unpadded base64)", () => {
    expect(fingerprintOf(Buffer.from(""))).toBe("SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU");
  });
});
