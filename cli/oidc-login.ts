/**
 * `slurmgate login --oidc`: the device flow against the person's identity provider, then the
 * gateway is asked who the ID token is (it must accept it before anything is stored), then the
 * sign-in is written to the login file.
 */
import {
  createClient,
  discover,
  isAbortError,
  OidcError,
  pollDeviceToken,
  startDeviceAuthorization,
} from "../client/index.ts";
import { writeConfig } from "./config-file.ts";
import { CliError, Interrupted } from "./errors.ts";
import type { Io } from "./io.ts";
import { printJson } from "./output.ts";

export async function loginWithOidc(
  io: Io,
  input: { url: string; issuer: string; clientId: string; scope: string; json: boolean },
): Promise<number> {
  const { clientId } = input;
  let endpoints: Awaited<ReturnType<typeof discover>>;
  let tokens: Awaited<ReturnType<typeof pollDeviceToken>>;
  try {
    endpoints = await discover(input.issuer);
    const auth = await startDeviceAuthorization(endpoints, { clientId, scope: input.scope, signal: io.signal });
    const minutes = Math.max(1, Math.round(auth.expiresIn / 60));
    // stderr: stdout stays for --json. One line a person can act on from any device.
    io.stderr.write(
      auth.verificationUriComplete
        ? `To sign in, open ${auth.verificationUriComplete} and confirm the code ${auth.userCode} (within ${minutes} min)\n`
        : `To sign in, open ${auth.verificationUri} and enter the code ${auth.userCode} (within ${minutes} min)\n`,
    );
    tokens = await pollDeviceToken(endpoints, auth, { clientId, signal: io.signal });
  } catch (err) {
    if (isAbortError(err)) {
      throw new Interrupted("sign-in interrupted; nothing was stored");
    }
    throw err instanceof OidcError ? signInFailure(err) : err;
  }
  const me = await createClient({ baseUrl: input.url, token: tokens.idToken }).me();
  const path = writeConfig(io.env, {
    url: input.url,
    oidc: {
      issuer: endpoints.issuer,
      clientId,
      tokenEndpoint: endpoints.tokenEndpoint,
      revocationEndpoint: endpoints.revocationEndpoint,
      refreshToken: tokens.refreshToken,
      idToken: tokens.idToken,
      expiresAt: tokens.expiresAt,
      subject: tokens.subject,
      username: tokens.username,
    },
  });
  if (input.json) {
    printJson(io, { url: input.url, user: me.user, kind: me.kind, issuer: endpoints.issuer, path });
  } else {
    const refresh = tokens.refreshToken ? "" : " (no refresh token: sign in again when it expires)";
    io.stdout.write(
      `logged in to ${input.url} as ${me.user ?? "?"} (${me.kind}) via ${endpoints.issuer}; saved to ${path}${refresh}\n`,
    );
  }
  return 0;
}

/** The provider's answer, said for a person: what happened and what to do. */
function signInFailure(err: OidcError): CliError {
  switch (err.code) {
    case "access_denied":
      return new CliError(`sign-in refused at ${err.issuer} (${err.message})`);
    case "untrusted_discovery":
      return new CliError(err.message);
    case "expired_token":
      return new CliError("the sign-in code expired before it was confirmed; run slurmgate login --oidc again");
    case "invalid_grant":
      // Some providers forget an expired device code and answer this instead of expired_token.
      return new CliError(
        `the sign-in code is no longer valid at ${err.issuer} (${err.message}); run slurmgate login --oidc again`,
      );
    default:
      return new CliError(`sign-in at ${err.issuer} failed: ${err.message}`);
  }
}
