/**
 * Reads and writes over SFTP against the real loopback sshd (test/ssh/sshd.sh; shared, never
 * restarted): many requests are in flight at once (counted on a wrapped SFTP session, not timed),
 * and the bytes are exactly the file's: ranges across request boundaries, a file that shrinks while
 * read, short answers, a symlink, an empty file, a failed write and a connection killed mid-read.
 */
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  symlinkSync,
  truncateSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import type { SFTPWrapper } from "ssh2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type SshConnection, createConnection } from "../../agent/executor/ssh/connection.ts";
import { createSftpOps } from "../../agent/executor/ssh/sftp.ts";
import { varTmpDir } from "../helpers/var-tmp.ts";

const REPO = join(import.meta.dirname, "..", "..");
const TEST_DIR = process.env.SLURMGATE_TEST_DIR ?? "/var/tmp/slurmgate-test";
const KIB = 1024;
/** The size of one SFTP read request. */
const REQ = 32 * KIB;

type ReadArgs = Parameters<SFTPWrapper["read"]>;
type WriteArgs = Parameters<SFTPWrapper["write"]>;
/** Called for each read request; returns the arguments to send on (it may change them). */
type OnRead = (args: ReadArgs, count: number) => ReadArgs | undefined;

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

let dir: string;
const connections: SshConnection[] = [];

/** Called for each write request; an error returned is its answer (it is not sent). */
type OnWrite = (args: WriteArgs, count: number) => Error | undefined;

/** SFTP file operations on their own connection, with every read and write request counted. */
function watched(onRead?: OnRead, onWrite?: OnWrite) {
  const file = join(TEST_DIR, "ssh", "ssh.json");
  if (!existsSync(file)) {
    execFileSync("bash", [join(REPO, "test/ssh/sshd.sh"), "up"], { stdio: "inherit" });
  }
  const info = JSON.parse(readFileSync(file, "utf8"));
  const connection = createConnection({
    host: info.host,
    port: info.port,
    username: info.user,
    hostKey: info.hostKey,
    privateKey: readFileSync(info.key),
    minBackoffMs: 50,
    maxBackoffMs: 200,
  });
  connections.push(connection);
  const reads = { outstanding: 0, most: 0, count: 0 };
  const writes = { outstanding: 0, most: 0, count: 0 };
  const wrap = (s: SFTPWrapper): SFTPWrapper =>
    new Proxy(s, {
      get(target, key) {
        if (key === "read") {
          return (...args: ReadArgs) => {
            reads.count++;
            const [handle, buf, off, len, position, cb] = onRead?.(args, reads.count) ?? args;
            reads.outstanding++;
            reads.most = Math.max(reads.most, reads.outstanding);
            target.read(handle, buf, off, len, position, (...answer: Parameters<typeof cb>) => {
              reads.outstanding--;
              cb(...answer);
            });
          };
        }
        if (key === "write") {
          return (...args: WriteArgs) => {
            writes.count++;
            const [handle, buf, off, len, position, cb] = args;
            const refused = onWrite?.(args, writes.count);
            if (refused) {
              setImmediate(() => cb(refused));
              return;
            }
            writes.outstanding++;
            writes.most = Math.max(writes.most, writes.outstanding);
            target.write(handle, buf, off, len, position, (err) => {
              writes.outstanding--;
              cb(err);
            });
          };
        }
        const value = Reflect.get(target, key);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  const ops = createSftpOps({ ...connection, sftp: async () => wrap(await connection.sftp()) });
  return { ops, reads, writes, connection };
}

beforeAll(() => {
  dir = varTmpDir("slurmgate-ssh-read-");
});

afterAll(() => {
  for (const c of connections) {
    c.close();
  }
  rmSync(dir, { recursive: true, force: true });
});

describe("readFile over SFTP", () => {
  it("keeps many read requests in flight, and the bytes hash as the source's", async () => {
    const { ops, reads } = watched();
    const bytes = randomBytes(4 * 1024 * KIB + 777);
    const file = join(dir, "pipelined.bin");
    writeFileSync(file, bytes);
    const got = await ops.readFile(file);
    expect(got && sha(got)).toBe(sha(bytes));
    // One request at a time would be 1 here.
    expect(reads.most).toBeGreaterThanOrEqual(16);
    expect(reads.outstanding).toBe(0);
    // An 8 MiB slice asked for with an explicit range is pipelined the same way.
    reads.most = 0;
    const slice = await ops.readFile(file, { offset: 12_345, length: 2 * 1024 * KIB });
    expect(slice?.equals(bytes.subarray(12_345, 12_345 + 2 * 1024 * KIB))).toBe(true);
    expect(reads.most).toBeGreaterThanOrEqual(16);
  });

  it("honours ranges at odd offsets and lengths across request boundaries", async () => {
    const { ops } = watched();
    const bytes = randomBytes(10 * REQ + 3);
    const file = join(dir, "ranges.bin");
    writeFileSync(file, bytes);
    const ranges: [number, number][] = [
      [0, 1],
      [1, REQ - 1],
      [REQ - 1, 2],
      [REQ - 1, REQ + 2],
      [3 * REQ - 5, 2 * REQ + 11],
      [100_001, 200_003],
      [bytes.length - 1, 1],
      [bytes.length - 10, 100],
      [bytes.length, 10],
      [bytes.length + 5000, 10],
      [7, 0],
    ];
    for (let i = 0; i < 20; i++) {
      const offset = Math.floor(Math.random() * bytes.length);
      ranges.push([offset, Math.floor(Math.random() * 5 * REQ)]);
    }
    for (const [offset, length] of ranges) {
      const got = await ops.readFile(file, { offset, length });
      const want = bytes.subarray(Math.min(offset, bytes.length), Math.min(offset + length, bytes.length));
      expect({ offset, length, same: got?.equals(want), got: got?.length }).toEqual({
        offset,
        length,
        same: true,
        got: want.length,
      });
    }
    // No length: to the end of the file from the offset.
    expect((await ops.readFile(file, { offset: 5 * REQ + 1 }))?.equals(bytes.subarray(5 * REQ + 1))).toBe(true);
  });

  it("reads a 0-byte file, and files of exactly one and many request sizes, whole", async () => {
    const { ops } = watched();
    writeFileSync(join(dir, "empty"), "");
    expect((await ops.readFile(join(dir, "empty")))?.length).toBe(0);
    expect((await ops.readFile(join(dir, "empty"), { length: 1024 * KIB }))?.length).toBe(0);
    for (const size of [REQ, 64 * REQ, 129 * REQ]) {
      const bytes = randomBytes(size);
      const file = join(dir, `exact-${size}`);
      writeFileSync(file, bytes);
      const whole = await ops.readFile(file);
      expect(whole && sha(whole)).toBe(sha(bytes));
      // Asking for more than there is gives what there is, not a padded buffer.
      const more = await ops.readFile(file, { length: size + REQ });
      expect(more?.length).toBe(size);
      expect(more && sha(more)).toBe(sha(bytes));
    }
  });

  it("gives a short result, never a padded one, for a file that shrinks while it is read", async () => {
    const bytes = randomBytes(64 * REQ);
    const file = join(dir, "shrinks.bin");
    writeFileSync(file, bytes);
    const keep = 2 * REQ + 100;
    // Truncated just before the 5th request goes out: the server answers it and all later ones past the end.
    const { ops } = watched((args, count) => {
      if (count === 5) {
        truncateSync(file, keep);
      }
      return args;
    });
    const got = await ops.readFile(file);
    expect(got).not.toBeNull();
    expect(got!.length).toBeGreaterThanOrEqual(keep);
    expect(got!.length).toBeLessThanOrEqual(4 * REQ);
    expect(got!.equals(bytes.subarray(0, got!.length))).toBe(true);
  });

  it("asks again for the rest when the server answers a read short", async () => {
    const bytes = randomBytes(20 * REQ + 9);
    const file = join(dir, "short-answers.bin");
    writeFileSync(file, bytes);
    // Every request is sent on for a third of what it asked (as a server may answer).
    const { ops, reads } = watched(([handle, buf, off, len, position, cb]) => [
      handle,
      buf,
      off,
      Math.max(1, Math.floor(len / 3)),
      position,
      cb,
    ]);
    const got = await ops.readFile(file, { offset: 3, length: bytes.length });
    expect(got?.equals(bytes.subarray(3))).toBe(true);
    expect(reads.count).toBeGreaterThan(3 * 20);
  });

  it("refuses a file replaced by a symlink before the read, and a missing file is null", async () => {
    const { ops } = watched();
    const file = join(dir, "swapped");
    writeFileSync(file, "mine");
    expect((await ops.readFile(file))?.toString()).toBe("mine");
    unlinkSync(file);
    symlinkSync("/etc/passwd", file);
    expect(await ops.readFile(file)).toBeNull();
    expect(await ops.readFile(file, { offset: 0, length: 100 })).toBeNull();
    expect(await ops.readFile(join(dir, "nope"))).toBeNull();
    expect(await ops.readFile(join(dir, "nope", "deeper"))).toBeNull();
  });

  it("fails a read whose connection is killed with requests in flight, never a short result; the next read reconnects", async () => {
    const bytes = randomBytes(8 * 1024 * KIB);
    const file = join(dir, "killed.bin");
    writeFileSync(file, bytes);
    let kill: (() => void) | undefined;
    const { ops, connection } = watched((args, count) => {
      if (count === 10) {
        kill?.();
      }
      return args;
    });
    const client = await connection.client();
    kill = () => client.end();
    const err = await ops.readFile(file).then(
      (got) => new Error(`resolved with ${got?.length} bytes`),
      (e: Error) => e,
    );
    expect(err.message).toMatch(/^read .*killed\.bin on .*: /);
    kill = undefined;
    // The connection is re-opened on demand (after the backoff).
    let again: Buffer | null | undefined;
    for (let i = 0; i < 40 && again === undefined; i++) {
      again = await ops.readFile(file).catch(async () => {
        await new Promise((r) => setTimeout(r, 100));
        return undefined;
      });
    }
    expect(again && sha(again)).toBe(sha(bytes));
  });
});

describe("writes over SFTP", () => {
  async function* chunks(bytes: Buffer, size: number): AsyncIterable<Uint8Array> {
    for (let at = 0; at < bytes.length; at += size) {
      yield bytes.subarray(at, at + size);
    }
  }

  it("keeps write requests in flight across the body's chunks, and in a whole-file write", async () => {
    const { ops, writes } = watched();
    // Odd chunk sizes: small ones are gathered into full requests, large ones sliced.
    for (const size of [1000, 70_001]) {
      const bytes = randomBytes(3 * 1024 * KIB + 17);
      const file = join(dir, `streamed-${size}.bin`);
      writes.most = 0;
      await ops.writeFileStream(file, chunks(bytes, size), 0o640);
      expect(sha(readFileSync(file))).toBe(sha(bytes));
      // Batches of about 1 MiB, each drained before the next is pulled, held at most 35.
      expect(writes.most).toBeGreaterThanOrEqual(48);
    }
    const whole = randomBytes(2 * 1024 * KIB + 1);
    writes.most = 0;
    await ops.writeFile(join(dir, "whole.bin"), whole, 0o600);
    expect(sha(readFileSync(join(dir, "whole.bin")))).toBe(sha(whole));
    // One request at a time would be 1 here.
    expect(writes.most).toBeGreaterThanOrEqual(16);
    expect(writes.outstanding).toBe(0);
  });

  it("a write the server refuses fails the whole write: nothing at the path, no temp", async () => {
    const { ops, writes } = watched(undefined, (_args, count) =>
      count >= 40 ? Object.assign(new Error("Failure"), { code: 4 }) : undefined,
    );
    const sub = mkdtempSync(join(dir, "refused-"));
    const err = await ops
      .writeFileStream(join(sub, "model.bin"), chunks(randomBytes(4 * 1024 * KIB), 64 * KIB), 0o600)
      .then(
        () => new Error("resolved"),
        (e: Error) => e,
      );
    expect(err.message).toMatch(/^write \/\S*model\.bin\.[0-9a-f]+\.tmp on \S+: Failure$/);
    expect(writes.outstanding).toBe(0);
    expect(readdirSync(sub)).toEqual([]);
    const again = await ops.writeFile(join(sub, "small"), randomBytes(5 * REQ), 0o600).then(
      () => new Error("resolved"),
      (e: Error) => e,
    );
    expect(again.message).toMatch(/^write \/\S*small\.[0-9a-f]+\.tmp on \S+: Failure$/);
    expect(readdirSync(sub)).toEqual([]);
  });
});
