/**
 * The file limits on their own, with no imports, so the client (browsers, Deno) can read them
 * without the schema library; schemas/files.ts re-exports them.
 */
/**
 * The ceilings. The gateway config may lower the per-file and per-user numbers, never raise them.
 * Per-user quota: over the byte or count limit answers 413 payload_too_large naming `quota.bytes` or `quota.files` (a
 * quota is not a rate: waiting does not help, deleting does).
 */
export const FILE_LIMITS = {
  /** One blob, uploaded in one request or composed from parts. */
  fileBytes: 8 * 1024 ** 3,
  /** The part size the client cuts large files into; files above it are uploaded in parts. */
  chunkBytes: 32 * 1024 ** 2,
  /** Parts one compose may join. */
  composeParts: 1_024,
  /** Bytes one user's uploads may hold (deduplicated per user). */
  userBytes: 50 * 1024 ** 3,
  /** Distinct blobs one user may hold. */
  userFiles: 10_000,
  /** Inputs of one job. */
  inputsPerJob: 256,
  /** A job-relative path: whole path, one component, and depth. */
  pathChars: 1_024,
  segmentChars: 255,
  pathDepth: 32,
} as const;
