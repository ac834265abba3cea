/**
 * A real OpenID Provider (the npm `oidc-provider`, OpenID-certified) on 127.0.0.1 with a random port,
 * for sign-in tests: discovery, JWKS, the device flow, ID and refresh tokens.
 *
 * Client `slurmgate`: public (`token_endpoint_auth_method: none`), grant types device_code +
 * refresh_token, scopes `openid profile email offline_access groups`. Accounts exist on first sign-in:
 * `sub` and `preferred_username` are the login name, `email` is `<name>@example.org`, `groups` is
 * `[]` unless `setAccount(name, claims)` says otherwise. ID tokens carry the scope's claims.
 *
 * How a test plays the browser in the device flow:
 * ```ts
 * const op = await startOidcProvider();
 * // the CLI (or the test) POSTs `${op.issuer}/device/auth` and prints verification_uri_complete
 * await op.playBrowser(verificationUriComplete, "alice"); // confirm code → log in as alice → consent
 * // the CLI's polling of `${op.issuer}/token` now gets an id_token + refresh_token
 * ```
 * `playBrowser` follows redirects with its own cookie jar and submits each page's form (user code
 * confirmation, login with the given user name and any password, consent) until the flow ends.
 *
 * For API tests that need only a token, `issueIdToken({ sub, preferred_username, groups })` has the
 * provider itself sign an ID token for the `slurmgate` client (same key, issuer and audience as the
 * device flow's). `rotateKeys()` starts a fresh provider on the same port with a new signing key
 * (the old public key stays published unless `{ dropOld: true }`), as an IdP rotating keys does.
 *
 * For the web page: `startOidcProvider({ browserClient: { redirectUris: [`${gateway}/ui/`] } })` also
 * registers client `slurmgate-web`, public, authorization code + refresh token (unless `refresh: false`), whose redirect URIs'
 * origins the provider allows for CORS (the page exchanges the code from the browser). Its login page
 * takes any user name and password; a consent page follows.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, importJWK, type JWK, type JWTPayload, SignJWT } from "jose";
import Provider from "oidc-provider";
import { createMemoryAdapter } from "oidc-provider/lib/adapters/memory_adapter.js";

export const OIDC_CLIENT_ID = "slurmgate";
export const OIDC_BROWSER_CLIENT_ID = "slurmgate-web";
export const DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code";
export const OIDC_SCOPES = "openid profile email offline_access groups";

export type AccountClaims = Record<string, unknown> & {
  preferred_username?: string;
  email?: string;
  groups?: string[];
};

export type OidcTestProvider = Awaited<ReturnType<typeof startOidcProvider>>;

/** A private RS256 signing JWK with a fresh `kid`. */
export async function newSigningKey(alg: "RS256" | "ES256" = "RS256"): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, alg, use: "sig", kid: `k-${crypto.randomUUID().slice(0, 8)}` };
}

export async function startOidcProvider(
  options: {
    idTokenTtlSeconds?: number;
    deviceCodeTtlSeconds?: number;
    browserClient?: { redirectUris: string[]; refresh?: boolean };
  } = {},
) {
  const accounts = new Map<string, AccountClaims>();
  // The signing key is first; older keys follow, still published so tokens they signed verify.
  let keys: JWK[] = [await newSigningKey()];
  let provider: Provider | undefined;
  // One store for every provider this helper starts, so sign-ins and refresh tokens survive rotateKeys().
  // Entries outlive their expiry by the provider's default clock tolerance (15 s), as with its own
  // default adapter: an expired device code is then answered `expired_token`, not `invalid_grant`.
  const adapter = createMemoryAdapter(15);
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;

  const requests: string[] = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url?.split("?")[0]}`);
    if (!handler) {
      res.writeHead(503).end();
      return;
    }
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const issuer = `http://127.0.0.1:${port}`;

  function build(): Provider {
    const p = new Provider(issuer, {
      clients: [
        {
          client_id: OIDC_CLIENT_ID,
          token_endpoint_auth_method: "none",
          grant_types: [DEVICE_CODE_GRANT, "refresh_token"],
          response_types: [],
          redirect_uris: [],
        },
        ...(options.browserClient
          ? [
              {
                client_id: OIDC_BROWSER_CLIENT_ID,
                application_type: "web" as const,
                token_endpoint_auth_method: "none",
                grant_types:
                  options.browserClient.refresh === false
                    ? ["authorization_code"]
                    : ["authorization_code", "refresh_token"],
                response_types: ["code"],
                redirect_uris: options.browserClient.redirectUris,
              },
            ]
          : []),
      ],
      adapter,
      jwks: { keys: keys as never },
      cookies: { keys: ["slurmgate-test-cookie-key"] },
      features: { devInteractions: { enabled: true }, deviceFlow: { enabled: true } },
      scopes: OIDC_SCOPES.split(" "),
      claims: {
        openid: ["sub"],
        profile: ["preferred_username", "name"],
        email: ["email", "email_verified"],
        groups: ["groups"],
      },
      // Put the scope's claims into the ID token, which is what the gateway verifies.
      conformIdTokenClaims: false,
      ttl: {
        IdToken: options.idTokenTtlSeconds ?? 3600,
        AccessToken: 3600,
        RefreshToken: 86_400,
        DeviceCode: options.deviceCodeTtlSeconds ?? 600,
        Session: 86_400,
        Interaction: 600,
        Grant: 86_400,
      },
      findAccount: (_ctx: unknown, id: string) => ({
        accountId: id,
        claims: () => ({
          sub: id,
          preferred_username: id,
          name: id,
          email: `${id}@example.org`,
          email_verified: true,
          groups: [],
          ...accounts.get(id),
        }),
      }),
    });
    return p;
  }

  function install() {
    provider = build();
    handler = provider.callback();
  }
  install();

  return {
    issuer,
    port,
    clientId: OIDC_CLIENT_ID,
    /** Every request the provider received, as "METHOD /path" (e.g. to count JWKS fetches). */
    requests,
    /** Discovery document URL and JWKS URL, for configuring the gateway. */
    discoveryUrl: `${issuer}/.well-known/openid-configuration`,
    jwksUri: `${issuer}/jwks`,
    /** The current signing key's `kid`. */
    get kid(): string {
      return keys[0]?.kid ?? "";
    },
    /** Claims (beyond sub) that account `name` will have in its tokens. */
    setAccount(name: string, claims: AccountClaims) {
      accounts.set(name, claims);
    },
    /**
     * An ID token signed by the provider for the `slurmgate` client. `sub` defaults to
     * `preferred_username`; the other claims default as for a signed-in account.
     */
    async issueIdToken(claims: AccountClaims & { sub?: string }, opts: { expiresIn?: number } = {}): Promise<string> {
      const p = provider as Provider;
      const sub = claims.sub ?? claims.preferred_username ?? "alice";
      const client = await p.Client.find(OIDC_CLIENT_ID);
      if (!client) {
        throw new Error("test client missing");
      }
      const token = new p.IdToken(
        {
          sub,
          preferred_username: sub,
          email: `${sub}@example.org`,
          email_verified: true,
          groups: [],
          ...accounts.get(sub),
          ...claims,
        },
        { client },
      );
      token.scope = "openid profile email groups";
      const now = Math.floor(Date.now() / 1000);
      return token.issue({
        use: "idtoken",
        ...(opts.expiresIn !== undefined ? { expiresAt: now + opts.expiresIn } : {}),
      }) as Promise<string>;
    },
    /**
     * A JWT signed with the provider's current key but claims of the test's choosing (a wrong `aud`,
     * odd times, extra claims): what the provider would never issue, verifiable like what it does.
     * `iss`, `aud` (`slurmgate`), `iat` and `exp` (+5 min) default sensibly; `null` leaves a claim out.
     */
    async sign(claims: Record<string, unknown>, header: { alg?: string; kid?: string } = {}): Promise<string> {
      const key = keys[0] as JWK;
      const now = Math.floor(Date.now() / 1000);
      const all: Record<string, unknown> = { iss: issuer, aud: OIDC_CLIENT_ID, iat: now, exp: now + 300, ...claims };
      const payload = Object.fromEntries(Object.entries(all).filter(([, v]) => v !== null)) as JWTPayload;
      return new SignJWT(payload)
        .setProtectedHeader({ alg: header.alg ?? "RS256", kid: header.kid ?? (key.kid as string) })
        .sign(await importJWK(key, "RS256"));
    },
    /** Starts signing with a new key on the same port; the old public key stays in the JWKS unless dropped. */
    async rotateKeys(opts: { dropOld?: boolean } = {}): Promise<string> {
      const fresh = await newSigningKey();
      keys = opts.dropOld ? [fresh] : [fresh, ...keys];
      install();
      return fresh.kid as string;
    },
    /** Plays the user's browser for a device-flow verification URL: confirm, log in as `username`, consent. */
    playBrowser: (url: string, username: string) => playBrowser(url, username),
    /** Runs a whole device flow in-process and returns the token response (for tests that need one). */
    async deviceLogin(username: string, scope = OIDC_SCOPES) {
      const start = await postForm(`${issuer}/device/auth`, { client_id: OIDC_CLIENT_ID, scope });
      if (!start.ok) {
        throw new Error(`device/auth: ${start.status} ${await start.text()}`);
      }
      const auth = (await start.json()) as { device_code: string; verification_uri_complete: string };
      await playBrowser(auth.verification_uri_complete, username);
      const res = await postForm(`${issuer}/token`, {
        client_id: OIDC_CLIENT_ID,
        grant_type: DEVICE_CODE_GRANT,
        device_code: auth.device_code,
      });
      const body = (await res.json()) as Record<string, unknown>;
      if (!res.ok) {
        throw new Error(`token: ${res.status} ${JSON.stringify(body)}`);
      }
      return body as { id_token: string; refresh_token?: string; access_token: string; expires_in: number };
    },
    /** Stops answering until `start()`: an IdP that is down (connections refused). */
    async stop() {
      await closeServer(server);
    },
    /** Answers again on the same port after `stop()`. */
    async start() {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, "127.0.0.1", () => resolve());
      });
    },
    async close() {
      if (server.listening) {
        await closeServer(server);
      }
    },
  };
}

function closeServer(server: ReturnType<typeof createServer>) {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

function postForm(url: string, form: Record<string, string>) {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(form),
  });
}

/**
 * A minimal browser: follows redirects keeping cookies, and on each HTML page submits its first form
 * (filling `login` with the user name and any password). Stops when a page has no form left.
 */
export async function playBrowser(startUrl: string, username: string): Promise<string> {
  const jar = new Map<string, string>();
  let url = startUrl;
  let init: RequestInit = { method: "GET" };
  for (let step = 0; step < 20; step++) {
    const res = await fetch(url, {
      ...init,
      redirect: "manual",
      headers: {
        ...(init.headers as Record<string, string>),
        cookie: [...jar].map(([k, v]) => `${k}=${v}`).join("; "),
      },
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(";");
      const eq = pair?.indexOf("=") ?? -1;
      if (pair && eq > 0) {
        jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1));
      }
    }
    const location = res.headers.get("location");
    if (res.status >= 300 && res.status < 400 && location) {
      await res.arrayBuffer();
      url = new URL(location, url).href;
      init = { method: "GET" };
      continue;
    }
    const html = await res.text();
    if (res.status >= 400) {
      throw new Error(`browser: ${res.status} at ${url}: ${html.slice(0, 300)}`);
    }
    const form = firstForm(html);
    if (!form) {
      if (/error/i.test(html) && !/success|sign-in complete|signed in/i.test(html)) {
        throw new Error(`browser: the flow ended on an error page: ${html.replace(/<[^>]+>/g, " ").slice(0, 300)}`);
      }
      return html;
    }
    const fields = new URLSearchParams(form.fields);
    if (fields.has("login")) {
      fields.set("login", username);
    }
    if (fields.has("password")) {
      fields.set("password", "any");
    }
    url = new URL(form.action || url, url).href;
    init = {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: fields.toString(),
    };
  }
  throw new Error("browser: too many steps");
}

function firstForm(html: string): { action: string; fields: [string, string][] } | undefined {
  const m = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(html);
  if (!m) {
    return undefined;
  }
  const attr = (tag: string, name: string) =>
    new RegExp(`\\b${name}\\s*=\\s*"([^"]*)"`, "i").exec(tag)?.[1]?.replace(/&amp;/g, "&");
  const fields: [string, string][] = [];
  for (const input of (m[2] ?? "").match(/<input\b[^>]*>/gi) ?? []) {
    const name = attr(input, "name");
    if (name) {
      fields.push([name, attr(input, "value") ?? ""]);
    }
  }
  return { action: attr(m[1] ?? "", "action") ?? "", fields };
}
