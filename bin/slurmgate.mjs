#!/usr/bin/env node
// The `slurmgate` command. Loads the TypeScript sources through tsx, so it runs on Node >= 20
// without a build step, and hands the process's streams, environment and Ctrl-C to cli/main.ts.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../cli/main.ts");

const controller = new AbortController();
let interrupts = 0;
process.on("SIGINT", () => {
  interrupts += 1;
  if (interrupts > 1) {
    process.exit(130);
  }
  controller.abort(new DOMException("interrupted", "AbortError"));
});

const readStdin = async () => {
  const chunks = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
};

const code = await main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  readStdin,
  env: process.env,
  signal: controller.signal,
});
process.exitCode = code;
// Long-polls in flight would otherwise keep the event loop alive after an interrupt.
if (code === 130) {
  process.exit(code);
}
