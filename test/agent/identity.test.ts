/**
 * The agent's own identity checks, against this machine's real account database (getent) and real
 * files: the mapping file's format and its worst inputs, the site and personal guards, and the
 * symlink-refusing reads a site agent uses in directories its users own.
 */
import { chmodSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createLocalExecutor } from "../../agent/executor/local.ts";
import { noFollowReads } from "../../agent/identity/from-config.ts";
import { IdentityRefusal, parsePasswdLine, siteGuard, tokenGuard } from "../../agent/identity/guard.ts";
import { loadUserMapping, parseUserMapping } from "../../agent/identity/mapping.ts";
import { sbatchIdentityArgs } from "../../agent/identity/hand-over.ts";

const local = createLocalExecutor();

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof IdentityRefusal) {
      return err.code;
    }
    throw err;
  }
  return "accepted";
}

describe("the mapping file", () => {
  it("parses users and a minimum uid, defaulting to 1000", () => {
    expect(parseUserMapping('{"users":{"alice":"sg-alice"}}')).toEqual({ minUid: 1000, users: { alice: "sg-alice" } });
    expect(parseUserMapping('{"minUid":500,"users":{}}').minUid).toBe(500);
  });

  it.each([
    ["not json", "not JSON"],
    ['{"users":{"alice":"sg-alice"},"gateway":"trusted"}', "(top)"],
    ['{"users":{"Alice":"sg-alice"}}', "users.Alice"],
    ['{"users":{"alice":"../etc"}}', "users.alice"],
    ['{"users":{"alice":"a b"}}', "users.alice"],
    ['{"users":{"alice":"-oProxyCommand"}}', "users.alice"],
    ['{"minUid":0,"users":{}}', "minUid"],
    ['{"users":["alice"]}', "users"],
  ])("refuses %s, naming %s", (text, where) => {
    expect(() => parseUserMapping(text, "map.json")).toThrow(where);
  });

  it("refuses a file others may write", () => {
    const dir = mkdtempSync(join(tmpdir(), "sg-map-"));
    const file = join(dir, "map.json");
    writeFileSync(file, '{"users":{}}');
    chmodSync(file, 0o666);
    expect(() => loadUserMapping(file, 0)).toThrow("writable by others");
    chmodSync(file, 0o644);
    expect(loadUserMapping(file, 0).users).toEqual({});
  });
});

describe("a site agent's guard", () => {
  const guard = siteGuard(
    parseUserMapping(
      JSON.stringify({
        minUid: 1000,
        users: { rooty: "root", sys: "daemon", ghost: "sg-nobody-here", nobody: "nobody" },
      }),
    ),
    local,
  );

  it("publishes the slurmgate names only, never the accounts", () => {
    expect(guard.published()).toEqual({ mode: "site", users: ["ghost", "nobody", "rooty", "sys"] });
  });

  it.each([
    ["carol", "owner_not_mapped"],
    ["constructor", "owner_not_mapped"],
    ["__proto__", "owner_not_mapped"],
    ["rooty", "owner_privileged_account"],
    ["sys", "owner_privileged_account"],
    ["ghost", "owner_unknown_account"],
  ])("refuses %s with %s", async (owner, code) => {
    expect(await refusal(guard.check(owner))).toBe(code);
  });

  it("accepts a mapped account above minUid and submits as it", async () => {
    const nobody = await guard.check("nobody");
    expect(nobody).toMatchObject({ name: "nobody", uid: 65534 });
    expect(sbatchIdentityArgs(nobody)).toEqual([`--uid=65534`, `--gid=${nobody!.gid}`]);
    expect(sbatchIdentityArgs(null)).toEqual([]);
  });

  it("reads getent's answer strictly", () => {
    expect(parsePasswdLine("alice:x:1001:1001::/home/alice:/bin/bash")).toEqual({
      name: "alice",
      uid: 1001,
      gid: 1001,
    });
    expect(parsePasswdLine("alice:x::1001::/home/alice:/bin/bash")).toBeNull();
    expect(parsePasswdLine("garbage")).toBeNull();
  });
});

describe("a personal agent's guard", () => {
  it("learns its user once and refuses every other owner, whatever the gateway says later", async () => {
    const answers = ["alice", "bob"];
    const guard = tokenGuard({ learn: async () => ({ user: answers.shift() ?? null }) });
    expect(await guard.ready()).toBe(true);
    expect(guard.mode).toBe("personal");
    expect(await refusal(guard.check("alice"))).toBe("accepted");
    expect(await refusal(guard.check("bob"))).toBe("owner_not_agent_user");
    expect(await refusal(guard.check("bob"))).toBe("owner_not_agent_user");
  });

  it("does not lease while it cannot learn its user, and a pinned user needs no gateway", async () => {
    const unreachable = tokenGuard({ learn: async () => undefined });
    expect(await unreachable.ready()).toBe(false);
    await expect(unreachable.check("alice")).rejects.toThrow("does not know yet");
    const pinned = tokenGuard({ pinned: "bob", learn: async () => ({ user: "alice" }) });
    expect(await refusal(pinned.check("alice"))).toBe("owner_not_agent_user");
  });

  it("with an unbound token runs everyone's jobs as itself, unless told to match the POSIX name", async () => {
    const self = tokenGuard({ learn: async () => ({ user: null }) });
    expect(await refusal(self.check("anyone"))).toBe("accepted");
    expect(self.published()).toEqual({ mode: "self" });
    const strict = tokenGuard({ learn: async () => ({ user: null }), posixUser: "sg-bob" });
    expect(await refusal(strict.check("alice"))).toBe("owner_not_agent_user");
  });
});

describe("reads in users' job directories", () => {
  it("never follow a symlink a user planted", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sg-nofollow-"));
    writeFileSync(join(dir, "secret"), "root only");
    writeFileSync(join(dir, "stdout"), "hello");
    symlinkSync(join(dir, "secret"), join(dir, "stderr"));
    const reads = noFollowReads(local);
    expect((await reads.readFile(join(dir, "stdout")))?.toString()).toBe("hello");
    expect(await reads.readFile(join(dir, "stderr"))).toBeNull();
    expect(await reads.readFile(dir)).toBeNull();
  });
});
