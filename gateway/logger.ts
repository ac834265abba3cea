/**
 * The gateway's one logger: JSON lines at or above `level`, written by `write` (stderr on Node,
 * console.log on Workers, where stdout and stderr both reach Workers Logs).
 */
import type { GatewayConfig } from "./config.ts";
import type { Logger } from "./deps.ts";

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 } as const;

/** @example jsonLogger("warn", (line) => process.stderr.write(`${line}\n`))({ level: "error", msg: "x" }) */
export function jsonLogger(level: GatewayConfig["SLURMGATE_LOG_LEVEL"], write: (line: string) => void): Logger {
  return (entry) => {
    const entryLevel = (entry.level as keyof typeof LEVELS) ?? "info";
    if ((LEVELS[entryLevel] ?? LEVELS.info) >= LEVELS[level]) {
      write(JSON.stringify({ time: new Date().toISOString(), level: entryLevel, ...entry }));
    }
  };
}
