// A local stand-in for an Auth0 tenant: the certified OpenID Connect provider `oidc-provider`,
// served over HTTPS on Auth0's routes, so mailer's single sign-on runs end to end offline
// (browser tests in tests/e2e/test_sso.py, `bin/demo --sso`). See docs/security.md.
//
// Options (or the environment variable in brackets):
//   --port N            [AUTH0_STANDIN_PORT]  0 (the default) picks a free port
//   --host H            [AUTH0_STANDIN_HOST]  127.0.0.1
//   --cert F --key F    [AUTH0_STANDIN_CERT, AUTH0_STANDIN_KEY]  PEM files (make_certs.py writes them)
//   --client-id, --client-secret  [AUTH0_CLIENT_ID, AUTH0_CLIENT_SECRET]  the one registered client
//   --redirect-uri U    [AUTH0_STANDIN_REDIRECT_URIS, comma-separated]  repeatable; allowed callback
//                       URLs, compared without their query as Auth0 does. None given: any
//                       http://127.0.0.1:*, http://localhost:* or http://[::1]:* URL.
//   --logout-uri U      [AUTH0_STANDIN_LOGOUT_URIS]  the same for /v2/logout's returnTo
//   --accounts F        [AUTH0_STANDIN_ACCOUNTS]  JSON {login: {email, email_verified, name, nickname}}
//   --id-token MODE     [AUTH0_STANDIN_ID_TOKEN]  honest (default), wrong-key or wrong-audience:
//                       misbehave like a hostile tenant, for the refusal tests
import { createSign, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { parseArgs } from 'node:util';

// oidc-provider 9 targets Node.js 22 LTS and warns on 20 ("Unsupported runtime") but runs there,
// as the tests show. Older ones (Debian 12's own nodejs is 18) are untried: refuse them plainly.
if (Number(process.versions.node.split('.')[0]) < 20) {
  console.error(`auth0-standin needs Node.js 20 or newer, not ${process.version}`);
  process.exit(1);
}
const { default: Provider } = await import('oidc-provider');

const { values: opt } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.AUTH0_STANDIN_PORT || '0' },
    host: { type: 'string', default: process.env.AUTH0_STANDIN_HOST || '127.0.0.1' },
    cert: { type: 'string', default: process.env.AUTH0_STANDIN_CERT },
    key: { type: 'string', default: process.env.AUTH0_STANDIN_KEY },
    'client-id': { type: 'string', default: process.env.AUTH0_CLIENT_ID || 'mailer-demo' },
    'client-secret': { type: 'string', default: process.env.AUTH0_CLIENT_SECRET || 'mailer-demo-secret' },
    'redirect-uri': { type: 'string', multiple: true, default: list(process.env.AUTH0_STANDIN_REDIRECT_URIS) },
    'logout-uri': { type: 'string', multiple: true, default: list(process.env.AUTH0_STANDIN_LOGOUT_URIS) },
    accounts: { type: 'string', default: process.env.AUTH0_STANDIN_ACCOUNTS },
    'id-token': { type: 'string', default: process.env.AUTH0_STANDIN_ID_TOKEN || 'honest' },
  },
});

function list(value) {
  return (value || '').split(',').map((item) => item.trim()).filter(Boolean);
}

const MODES = ['honest', 'wrong-key', 'wrong-audience'];
if (!MODES.includes(opt['id-token'])) {
  throw new Error(`--id-token must be one of ${MODES.join(', ')}, not ${opt['id-token']}`);
}
if (!opt.cert || !opt.key) {
  throw new Error('--cert and --key (PEM files) are required: Auth0 is only ever HTTPS');
}

// Login (what one types at the provider's sign-in form) -> the claims Auth0 would put in the id_token.
const ACCOUNTS = opt.accounts ? JSON.parse(readFileSync(opt.accounts, 'utf8')) : {
  alice: { email: 'alice@example.com', email_verified: true, name: 'Alice Liddell', nickname: 'alice' },
  bob: { email: 'bob@elsewhere.org', email_verified: true, name: 'Bob Builder', nickname: 'bob' },
  carol: { email: 'carol@example.com', email_verified: false, name: 'Carol Danvers', nickname: 'carol' },
};

// The signing key is made at each start, like a freshly rotated tenant key, under a new kid:
// social-core caches JWKS keys by kid for a day and fetches again only for a kid it does not know.
// The "wrong" key is published nowhere but carries the same kid: only its signature gives it away.
const KID = `standin-${randomBytes(4).toString('hex')}`;
const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
const wrongKey = opt['id-token'] === 'wrong-key' && generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

const server = createServer({ cert: readFileSync(opt.cert), key: readFileSync(opt.key) });
// Listen first: with --port 0 the issuer (which names the port) is only known once bound.
await new Promise((resolve) => { server.listen(Number(opt.port), opt.host, resolve); });
const { port } = server.address();
// social-core checks iss == "https://{AUTH0_DOMAIN}/", trailing slash included, as Auth0 issues it.
// oidc-provider accepts that issuer and still mounts its routes at "/" (it drops the slash).
const issuer = `https://${opt.host}:${port}/`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: opt['client-id'],
    client_secret: opt['client-secret'],
    // social-core sends client_id and client_secret in the token request's body.
    token_endpoint_auth_method: 'client_secret_post',
    grant_types: ['authorization_code'],
    response_types: ['code'],
    // Registered for the schema's sake; redirectUriAllowed below decides.
    redirect_uris: opt['redirect-uri'].length ? opt['redirect-uri'] : ['http://127.0.0.1/sso/complete/auth0/'],
    post_logout_redirect_uris: opt['logout-uri'],
  }],
  routes: {
    authorization: '/authorize',
    token: '/oauth/token',
    userinfo: '/userinfo',
    jwks: '/.well-known/jwks.json',
    end_session: '/v2/logout',
  },
  jwks: { keys: [{ ...signingKey.export({ format: 'jwk' }), kid: KID, alg: 'RS256', use: 'sig' }] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  claims: { openid: ['sub'], profile: ['name', 'nickname'], email: ['email', 'email_verified'] },
  // Auth0 puts the profile and email claims in the id_token, and mailer reads only the id_token.
  conformIdTokenClaims: false,
  async findAccount(ctx, id) {
    const claims = ACCOUNTS[id];
    // Unknown login: no account, so the provider asks to sign in again.
    return claims && { accountId: id, claims: async () => ({ sub: id, ...claims }) };
  },
  // mailer is a first-party application: no consent screen, as with Auth0's "skip consent".
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    const existing = grantId && await ctx.oidc.provider.Grant.find(grantId);
    if (existing) return existing;
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid profile email');
    await grant.save();
    return grant;
  },
  features: {
    // The built-in sign-in form: any password, the login names the account (ACCOUNTS).
    devInteractions: { enabled: true },
    rpInitiatedLogout: {
      // Auth0's /v2/logout asks nothing: submit the confirmation form at once, ending the whole
      // provider session (logout=yes), then go back to returnTo.
      async logoutSource(ctx, form) {
        ctx.body = `<!DOCTYPE html><title>Signing out</title>${form}
          <input type="hidden" form="op.logoutForm" name="logout" value="yes">
          <noscript><button type="submit" form="op.logoutForm">Sign out</button></noscript>
          <script>document.getElementById('op.logoutForm').submit()</script>`;
      },
    },
  },
});

// Callback and logout URLs: Auth0 compares them without the query, and social-auth adds
// ?redirect_state=... to the callback, so an exact match (oidc-provider's rule) would fail.
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);
function uriAllowed(value, registered) {
  let url;
  try { url = new URL(value); } catch { return false; }
  url.search = '';
  if (registered.length) return registered.includes(url.href);
  return url.protocol === 'http:' && LOOPBACK.has(url.hostname);
}
provider.Client.prototype.redirectUriAllowed = function (value) { return uriAllowed(value, opt['redirect-uri']); };
provider.Client.prototype.postLogoutRedirectUriAllowed = function (value) { return uriAllowed(value, opt['logout-uri']); };

// Auth0's logout is GET /v2/logout?client_id=..&returnTo=..; OpenID's end_session names the
// return address post_logout_redirect_uri.
provider.use(async (ctx, next) => {
  if (ctx.path === '/v2/logout' && ctx.query.returnTo) {
    const { returnTo, ...query } = ctx.query;
    ctx.query = { ...query, post_logout_redirect_uri: returnTo };
  }
  await next();
});

// The misbehaving modes re-sign the id_token the provider has just issued, after the fact.
const b64 = (data) => Buffer.from(data).toString('base64url');
function sign(header, claims, key) {
  const input = `${b64(JSON.stringify(header))}.${b64(JSON.stringify(claims))}`;
  return `${input}.${createSign('RSA-SHA256').update(input).sign(key, 'base64url')}`;
}
provider.use(async (ctx, next) => {
  await next();
  const mode = opt['id-token'];
  if (mode === 'honest' || ctx.path !== '/oauth/token' || !ctx.body?.id_token) return;
  const [header, claims] = ctx.body.id_token.split('.', 2).map((part) => JSON.parse(Buffer.from(part, 'base64url')));
  if (mode === 'wrong-audience') {
    ctx.body.id_token = sign(header, { ...claims, aud: 'another-application' }, signingKey);
  } else {
    ctx.body.id_token = sign(header, claims, wrongKey);
  }
});

server.on('request', provider.callback());
console.log(`auth0-standin listening on ${issuer}`);
