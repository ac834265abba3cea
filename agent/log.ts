/**
 * Structured JSON logs on stderr. Tokens and secret values never reach here: callers log ids,
 * states and messages, and `redact` masks anything shaped like a slurmgate token as a last guard.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";
export type Logger = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function redact(text: string): string {
  return text.replace(/\bsg[uak]_[A-Za-z0-9_-]{16,}/g, "sg?_[redacted]");
}

export function createLogger(level: LogLevel, write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  return (entryLevel, msg, fields = {}) => {
    if (ORDER[entryLevel] < ORDER[level]) {
      return;
    }
    const line = JSON.stringify({ time: new Date().toISOString(), level: entryLevel, msg, ...fields });
    write(`${redact(line)}\n`);
  };
}
