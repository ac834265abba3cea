/**
 * The SSH executor's one connection and its SFTP session: opened on first use, pinned host key,
 * keepalive, and a reconnect with exponential backoff and jitter after a drop or a failed attempt.
 * All mutable connection state lives here; exec and SFTP code only ask for the current one.
 */
import { Client, type ConnectConfig, type SFTPWrapper } from "ssh2";
import { hostKeyPin, parsePinnedHostKey } from "./host-key.ts";

/** Options for {@link createConnection} (the connection part of the SSH executor's options). */
export interface SshConnectionOptions {
  host: string;
  port?: number;
  username: string;
  /** Pinned host key fingerprint(s): `SHA256:<base64>`; several may be given for a key rotation. */
  hostKey: string | string[];
  /** Private key (PEM/OpenSSH text); or use `agent`. */
  privateKey?: string | Buffer;
  passphrase?: string;
  /** ssh-agent socket (SSH_AUTH_SOCK). */
  agent?: string;
  /** Connect + handshake + auth timeout (ms). Default 20 s. */
  connectTimeoutMs?: number;
  /** First reconnect delay (ms), doubled per failure up to `maxBackoffMs`, with ±25 % jitter. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Keepalive probe interval (ms); 3 unanswered probes drop the connection. Default 15 s. */
  keepaliveMs?: number;
  /** Called on connect, disconnect and connect failures (no secrets in the fields). */
  log?: (level: "info" | "warn", message: string, fields?: Record<string, unknown>) => void;
}

/** The connection as exec and SFTP code see it. */
export interface SshConnection {
  /** `user@host:port`, for error messages. */
  readonly where: string;
  /** The open connection, connecting (after any backoff) when there is none. */
  client(): Promise<Client>;
  /** The SFTP session on the current connection, opened on first use. */
  sftp(): Promise<SFTPWrapper>;
  /** Closes the connection for good: later calls fail. */
  close(): void;
}

/**
 * Delay before reconnect attempt number `failures + 1`: `min` doubled per failure up to `max`,
 * times a jitter factor in [0.75, 1.25) drawn from `random()`.
 * @example reconnectDelayMs(3, 500, 30_000, () => 0.5) // => 2000
 */
export function reconnectDelayMs(failures: number, min: number, max: number, random = Math.random): number {
  const backoff = Math.min(max, min * 2 ** Math.min(Math.max(failures - 1, 0), 16));
  return backoff * (0.75 + random() / 2);
}

/**
 * Manages the connection described by `options`. Throws at once when no host key is pinned or
 * no credential is given.
 */
export function createConnection(options: SshConnectionOptions): SshConnection {
  const pinned = parsePinnedHostKey(options.hostKey);
  if (!options.privateKey && !options.agent) {
    throw new Error("SSH mode needs SLURMGATE_SSH_KEY (a private key file) or an ssh-agent (SSH_AUTH_SOCK)");
  }
  const minBackoff = options.minBackoffMs ?? 500;
  const maxBackoff = options.maxBackoffMs ?? 30_000;
  const log = options.log ?? (() => {});
  const where = `${options.username}@${options.host}:${options.port ?? 22}`;

  let current: Client | null = null;
  let connecting: Promise<Client> | null = null;
  let session: Promise<SFTPWrapper> | null = null;
  let failures = 0;
  let nextAttemptAt = 0;
  let closed = false;

  const dropped = (c: Client) => {
    if (current === c) {
      current = null;
      session = null;
      log("warn", "ssh connection closed", { to: where });
    }
  };

  const attempt = async (): Promise<Client> => {
    const wait = nextAttemptAt - Date.now();
    if (wait > 0) {
      await new Promise((r) => setTimeout(r, wait));
    }
    try {
      const c = await openClient(options, pinned, where, dropped);
      if (closed) {
        c.end();
        throw new Error("ssh executor closed");
      }
      failures = 0;
      nextAttemptAt = 0;
      current = c;
      log("info", "ssh connected", { to: where });
      return c;
    } catch (err) {
      failures++;
      nextAttemptAt = Date.now() + reconnectDelayMs(failures, minBackoff, maxBackoff);
      log("warn", "ssh connect failed", { to: where, error: (err as Error).message, failures });
      throw err;
    } finally {
      connecting = null;
    }
  };

  const client = async (): Promise<Client> => {
    if (closed) {
      throw new Error("ssh executor closed");
    }
    if (current) {
      return current;
    }
    connecting ??= attempt();
    return connecting;
  };

  const sftp = async (): Promise<SFTPWrapper> => {
    const c = await client();
    if (!session) {
      const opening: Promise<SFTPWrapper> = openSftp(c, where, () => {
        if (session === opening) {
          session = null;
        }
      });
      session = opening;
      opening.catch(() => {
        if (session === opening) {
          session = null;
        }
      });
    }
    return session;
  };

  return {
    where,
    client,
    sftp,
    close() {
      closed = true;
      current?.end();
      current = null;
      session = null;
    },
  };
}

/**
 * Opens one connection: resolves once authenticated; rejects with a {@link HostKeyMismatchError}
 * when the server's key is not pinned (before any credential is sent). `onDrop` hears of its end.
 */
function openClient(
  options: SshConnectionOptions,
  pinned: readonly string[],
  where: string,
  onDrop: (c: Client) => void,
): Promise<Client> {
  return new Promise((resolve, reject) => {
    const c = new Client();
    const pin = hostKeyPin(pinned);
    let settled = false;
    const config: ConnectConfig = {
      host: options.host,
      port: options.port ?? 22,
      username: options.username,
      privateKey: options.privateKey,
      passphrase: options.passphrase,
      agent: options.agent,
      readyTimeout: options.connectTimeoutMs ?? 20_000,
      keepaliveInterval: options.keepaliveMs ?? 15_000,
      keepaliveCountMax: 3,
      hostVerifier: (key: Buffer) => pin.verify(key),
    };
    c.on("ready", () => {
      settled = true;
      resolve(c);
    });
    c.on("error", (err) => {
      if (!settled) {
        settled = true;
        c.end();
        reject(
          pin.refused()
            ? pin.mismatch(`${options.host}:${options.port ?? 22}`)
            : new Error(`ssh to ${where} failed: ${err.message}`),
        );
      }
    });
    c.on("close", () => {
      if (!settled) {
        settled = true;
        reject(new Error(`ssh to ${where}: connection closed during the handshake`));
      }
      onDrop(c);
    });
    c.on("end", () => onDrop(c));
    c.connect(config);
  });
}

/** Opens an SFTP session on `c`; `onClose` hears when the server closes it. */
function openSftp(c: Client, where: string, onClose: () => void): Promise<SFTPWrapper> {
  return new Promise((resolve, reject) =>
    c.sftp((err, s) => {
      if (err) {
        reject(new Error(`sftp to ${where}: ${err.message}`));
        return;
      }
      s.on("close", onClose);
      resolve(s);
    }),
  );
}
