/**
 * Child-process entry for the tests' real gateway: the same startGateway as `npm start`.
 */
import { startGateway } from "../../../gateway/node.ts";

startGateway(process.env).catch((err: Error) => {
  process.stderr.write(`gateway failed: ${err.message}\n`);
  process.exit(1);
});
