// A real OpenID provider for the sign-in tests and the demo's first look:
// oidc-provider (OpenID Certified), its own login page (devInteractions),
// accounts with group claims, JWT access tokens for one resource per client.
//
//   node provider.mjs CONFIG.json
//
// CONFIG: { port, issuer, jwks: {keys: [private JWKs]}, clients: [...],
//           accounts: {login: {claims}}, resources: {client_id: audience} }
// Restarting with another `jwks` is a key rotation. Any login not in
// `accounts` signs in with only a `sub` (a person nobody mapped a role to).
import { readFileSync } from "node:fs";
import Provider from "oidc-provider";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const accounts = config.accounts || {};
const resources = config.resources || {};

function account(id) {
  const claims = { sub: id, ...(accounts[id] || {}) };
  return { accountId: id, claims: async () => claims };
}

const provider = new Provider(config.issuer, {
  clients: config.clients,
  jwks: config.jwks,
  findAccount: async (_ctx, id) => account(id),
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["name", "preferred_username"],
    groups: ["groups", "employee_id", "reports"],
  },
  scopes: ["openid", "email", "profile", "groups", "offline_access"],
  // the ID token carries the claims (as Entra ID, Google and Okta do)
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, client) => resources[client.clientId],
      useGrantedResource: async () => true,
      getResourceServerInfo: async (_ctx, resource) => ({
        scope: "openid email profile groups",
        audience: resource,
        accessTokenFormat: "jwt",
        accessTokenTTL: 600,
        jwt: { sign: { alg: config.accessTokenAlg || "ES256" } },
      }),
    },
  },
  // access tokens carry the person's groups, as a customer's IT configures them
  extraTokenClaims: async (_ctx, token) => {
    const a = accounts[token.accountId];
    return a ? { groups: a.groups || [], employee_id: a.employee_id, reports: a.reports } : undefined;
  },
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed("refresh_token"),
  // a first-party app whose consent the customer's IT gave for everyone
  loadExistingGrant: async (ctx) => {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope("openid email profile groups offline_access");
    grant.addOIDCClaims(["groups", "employee_id", "reports", "email", "name"]);
    for (const aud of Object.values(resources)) grant.addResourceScope(aud, "openid email profile groups");
    await grant.save();
    return grant;
  },
  ttl: { Session: 3600, Grant: 3600, IdToken: 600, AccessToken: 600, RefreshToken: 86400 },
  cookies: { keys: ["test-only-cookie-key"] },
});
provider.proxy = false;
provider.listen(config.port, "127.0.0.1", () => {
  process.stdout.write(`listening ${config.issuer}\n`);
});
