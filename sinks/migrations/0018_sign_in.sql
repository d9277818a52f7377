-- Sign-in with the customer's identity provider (api/sso/, docs/sign-in.md).
-- A tenant's OpenID provider: issuer and client (the client secret sealed,
-- `fernet:…`, with SKILLSTREAM_SSO_KEYS), the audience its API access tokens
-- name, the e-mail domains that find the tenant at sign-in, and the claim
-- mapping (JSON: role_claim, roles {claim value: role}, user_claim,
-- learners_claim). removed = 1 turns sign-in off.
CREATE TABLE IF NOT EXISTS tenant_sso (
    tenant_id      String,
    issuer         String,
    client_id      String,
    client_secret  String,
    audience       String,
    domains        Array(String),
    mapping        String,
    removed        UInt8,
    version        DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(version)
ORDER BY tenant_id;
-- People provisioned at their first sign-in: who the provider says they are
-- (issuer, subject), the user id reports know them by, the role last mapped.
CREATE TABLE IF NOT EXISTS sso_people (
    tenant_id       String,
    user_id         String,
    issuer          String,
    subject         String,
    role            LowCardinality(String),
    provisioned_at  DateTime64(6, 'UTC'),
    version         DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(version)
ORDER BY (tenant_id, user_id);
-- Browser sessions: only the SHA-256 of the cookie's value is stored; the
-- provider's ID token (for sign-out) and refresh token are sealed.
CREATE TABLE IF NOT EXISTS sso_sessions (
    session_hash   String,
    tenant_id      String,
    user_id        String,
    role           LowCardinality(String),
    id_token       String,
    refresh_token  String,
    created_at     DateTime64(6, 'UTC'),
    expires_at     DateTime64(6, 'UTC'),
    ended          UInt8,
    version        DateTime64(6, 'UTC')
) ENGINE = ReplacingMergeTree(version)
ORDER BY session_hash
TTL toDateTime(expires_at) + INTERVAL 1 DAY;
