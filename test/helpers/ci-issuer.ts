/**
 * A small CI token issuer for the keyless-CI tests: its own RS256 key pair (jose), discovery and
 * JWKS served on 127.0.0.1, and tokens shaped like GitHub Actions' and GitLab CI's ID tokens.
 *
 * Which `iss`: the real issuers (`https://token.actions.githubusercontent.com`, `https://gitlab.com`)
 * cannot be served from loopback, so by default tokens carry the real `iss` and the gateway's issuer
 * config names the loopback keys with `jwksUri` (`issuerConfig()` writes that entry): the trust
 * policies under test are then exactly what an operator writes, plus one `jwksUri` line. Pass
 * `{ issuer: "loopback" }` to use the loopback URL itself as `iss`, served with discovery.
 *
 * @example
 * const gh = await startCiIssuer("github");
 * const gw = await createTestGateway({ SLURMGATE_OIDC_ISSUERS: JSON.stringify([gh.issuerConfig({ trust: [...] })]) });
 * const token = await gh.github({ repository: "org/vision", ref: "refs/heads/main" });
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWTPayload, SignJWT } from "jose";

export const GITHUB_ISSUER = "https://token.actions.githubusercontent.com";
export const GITLAB_ISSUER = "https://gitlab.com";

type Flavour = "github" | "gitlab";
type Overrides = Record<string, unknown> & { aud?: string | string[]; expiresInSeconds?: number };

export type CiIssuer = Awaited<ReturnType<typeof startCiIssuer>>;

export async function startCiIssuer(flavour: Flavour, options: { issuer?: "real" | "loopback" } = {}) {
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  const kid = `ci-${crypto.randomUUID().slice(0, 8)}`;
  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid, alg: "RS256", use: "sig" }] };
  let requests = 0;

  const server = createServer((req, res) => {
    requests++;
    const path = new URL(req.url ?? "/", base()).pathname;
    if (path === "/.well-known/openid-configuration") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          issuer: iss,
          jwks_uri: `${base()}/.well-known/jwks`,
          id_token_signing_alg_values_supported: ["RS256"],
          response_types_supported: ["id_token"],
          subject_types_supported: ["public"],
        }),
      );
      return;
    }
    if (path === "/.well-known/jwks") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(jwks));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const base = () => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const real = flavour === "github" ? GITHUB_ISSUER : GITLAB_ISSUER;
  const iss = options.issuer === "loopback" ? base() : real;

  /** Signs `claims` as this issuer; `aud` defaults to `slurmgate`, lifetime to 5 minutes (GitHub's). */
  async function sign(claims: Record<string, unknown>, overrides: Overrides = {}) {
    const { aud = "slurmgate", expiresInSeconds = 300, ...rest } = overrides;
    const now = Math.floor(Date.now() / 1000);
    const payload: JWTPayload = { jti: crypto.randomUUID(), ...claims, ...rest };
    // Claims explicitly set to undefined are dropped: that is how a test sends a token lacking one.
    for (const [k, v] of Object.entries(payload)) {
      if (v === undefined) {
        delete payload[k];
      }
    }
    return new SignJWT(payload)
      .setProtectedHeader({ alg: "RS256", kid, typ: "JWT" })
      .setIssuer(iss)
      .setAudience(aud)
      .setIssuedAt(now)
      .setNotBefore(now - 5)
      .setExpirationTime(now + expiresInSeconds)
      .sign(privateKey);
  }

  return {
    /** The `iss` its tokens carry. */
    issuer: iss,
    /** Where discovery and keys are served. */
    url: base(),
    jwksUri: `${base()}/.well-known/jwks`,
    /** How many HTTP requests the issuer has answered (discovery and JWKS fetches). */
    requests: () => requests,
    /** Signs exactly these claims (plus iss, aud, iat, nbf, exp, jti): for tokens no real CI would send. */
    sign,
    /** One entry of SLURMGATE_OIDC_ISSUERS for this issuer. */
    issuerConfig(rest: Record<string, unknown> = {}) {
      return {
        issuer: iss,
        audience: "slurmgate",
        algorithms: ["RS256"],
        ...(options.issuer === "loopback" ? {} : { jwksUri: `${base()}/.well-known/jwks` }),
        ...rest,
      };
    },
    /** A GitHub Actions ID token (claims as documented for `ACTIONS_ID_TOKEN_REQUEST_URL`). */
    github(c: { repository: string; ref: string; sha?: string } & Overrides) {
      const [owner = "org"] = c.repository.split("/");
      const sha = "sha" in c ? c.sha : "d6cd1e2bd19e03a81132a23b2025920577f84e37";
      const refType = c.ref.startsWith("refs/tags/") ? "tag" : "branch";
      const workflowRef = `${c.repository}/.github/workflows/ci.yml@${c.ref}`;
      return sign(
        {
          sub: `repo:${c.repository}:ref:${c.ref}`,
          ref: c.ref,
          sha,
          repository: c.repository,
          repository_owner: owner,
          repository_owner_id: "65",
          repository_id: "4242",
          repository_visibility: "private",
          run_id: "5712",
          run_number: "12",
          run_attempt: "1",
          actor: "octocat",
          actor_id: "583231",
          workflow: "ci",
          workflow_ref: workflowRef,
          workflow_sha: sha,
          job_workflow_ref: workflowRef,
          event_name: "push",
          ref_type: refType,
          head_ref: "",
          base_ref: "",
          runner_environment: "github-hosted",
        },
        stripKnown(c, ["repository", "ref", "sha"]),
      );
    },
    /** A GitLab CI ID token (`id_tokens:`); GitLab's `ref` is the bare branch name, `ref_path` the full ref. */
    gitlab(c: { project_path: string; ref: string; ref_type?: "branch" | "tag" } & Overrides) {
      const refType = c.ref_type ?? "branch";
      const namespace = c.project_path.split("/").slice(0, -1).join("/") || c.project_path;
      return sign(
        {
          sub: `project_path:${c.project_path}:ref_type:${refType}:ref:${c.ref}`,
          namespace_id: "72",
          namespace_path: namespace,
          project_id: "20",
          project_path: c.project_path,
          user_id: "1",
          user_login: "ci-bot",
          user_email: "ci-bot@example.org",
          pipeline_id: "574",
          pipeline_source: "push",
          job_id: "302",
          ref: c.ref,
          ref_type: refType,
          ref_path: `refs/${refType === "tag" ? "tags" : "heads"}/${c.ref}`,
          ref_protected: "true",
          runner_id: "1",
          runner_environment: "gitlab-hosted",
          sha: "714a629c0b401fdce83e847fc9589983fc6f46bc",
        },
        stripKnown(c, ["project_path", "ref", "ref_type"]),
      );
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** The named fields are already in the body; everything else overrides or adds claims. */
function stripKnown(c: Record<string, unknown>, known: string[]): Overrides {
  return Object.fromEntries(Object.entries(c).filter(([k]) => !known.includes(k))) as Overrides;
}
