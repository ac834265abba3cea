/**
 * The shape of a verb. Each verb owns its help text (with examples) and returns an exit code.
 */
import type { Io } from "./io.ts";

export type Command = {
  name: string;
  /** One line for `slurmgate --help`. */
  summary: string;
  /** The full `slurmgate <verb> --help`. */
  help: string;
  run(argv: string[], io: Io): Promise<number>;
};

/** Prints help and returns 0 when `--help` was given. */
export function helped(io: Io, command: Command, values: { help?: boolean }): boolean {
  if (values.help) {
    io.stdout.write(`${command.help.trim()}\n`);
  }
  return Boolean(values.help);
}
