/**
 * The shared HTTP API suite (test/api/suite.ts, also run against Node in test/api/node.test.ts)
 * against the Worker build in real workerd, over libSQL HTTP to the test Hrana endpoint.
 */
import { defineApiSuite } from "../api/suite.ts";
import { startWorkerTarget } from "../helpers/worker-target.ts";

defineApiSuite("worker in workerd", () => startWorkerTarget());
