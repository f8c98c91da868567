// A real OpenID Connect provider (node-oidc-provider) for Bitesize's SSO tests. NOT for
// production: it signs anyone in, without a form.
//
//   node provider.mjs [--port N]          (or OIDC_PORT; 0 or unset: a free port)
//
// Prints `oidc-provider ready: issuer=http://127.0.0.1:N` once it listens on 127.0.0.1.
//
// Settings (environment):
//   OIDC_CLIENT_ID / OIDC_CLIENT_SECRET   the one static client (bitesize / bitesize-test-secret)
//   OIDC_REDIRECT_URIS                    comma-separated; default: the callbacks of providers
//                                         named `test` and `test-userinfo` on 127.0.0.1
//   OIDC_POST_LOGOUT_REDIRECT_URIS        comma-separated; default http://127.0.0.1/login
//   OIDC_TEST_USER / OIDC_TEST_GROUPS     who signs in when the request does not say (alice / shop-team)
// Loopback redirect URIs match on any port (as RFC 8252 allows for loopback), since every
// test server listens on a port of its own.
//
// Who signs in, per authorization request (extra query parameters the test adds to the
// authorization URL before following it; there is no login form):
//   test_user=alice            the user (`sub` and `preferred_username`)
//   test_groups=shop-team,ops  its `groups` claim (in the ID token and in userinfo)
//   test_mode=...              makes the provider misbehave, for negative tests:
//     expired          ID token expired 10 minutes ago (iat 20 minutes ago)
//     wrong_audience   ID token `aud` is `someone-else`
//     wrong_nonce      ID token `nonce` differs from the one requested
//     bad_signature    ID token signed with a key that is not in the JWKS
//     userinfo_groups  `groups` left out of the ID token (only userinfo has them)
//     deny             the user refuses: the callback gets error=access_denied
// The misbehaving tokens are re-signed with the provider's own key (except bad_signature),
// so each breaks exactly one rule. A mode belongs to the user name it was requested with:
// give each mode a user name of its own.

import * as crypto from 'node:crypto';
import * as http from 'node:http';

import Provider from 'oidc-provider';

const arg = (name) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const list = (text) => (text || '').split(',').map((s) => s.trim()).filter(Boolean);

const port = Number(arg('port') ?? process.env.OIDC_PORT ?? 0);
const clientId = process.env.OIDC_CLIENT_ID || 'bitesize';
const clientSecret = process.env.OIDC_CLIENT_SECRET || 'bitesize-test-secret';
const redirectUris = list(process.env.OIDC_REDIRECT_URIS).length
  ? list(process.env.OIDC_REDIRECT_URIS)
  : ['http://127.0.0.1/auth/oidc/test/callback', 'http://127.0.0.1/auth/oidc/test-userinfo/callback'];
const postLogoutRedirectUris = list(process.env.OIDC_POST_LOGOUT_REDIRECT_URIS).length
  ? list(process.env.OIDC_POST_LOGOUT_REDIRECT_URIS)
  : ['http://127.0.0.1/login'];
const defaultUser = process.env.OIDC_TEST_USER || 'alice';
const defaultGroups = list(process.env.OIDC_TEST_GROUPS ?? 'shop-team');

// The signing key: ours, so misbehaving tokens can be re-signed with it.
const KID = 'bitesize-test';
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const { privateKey: strangerKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = { ...privateKey.export({ format: 'jwk' }), kid: KID, alg: 'RS256', use: 'sig' };

// Accounts seen in interactions: sub -> { user, groups, mode }.
const accounts = new Map();

const b64 = (value) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
const decodePart = (part) => JSON.parse(Buffer.from(part, 'base64url').toString());
function sign(header, payload, key) {
  const input = `${b64(header)}.${b64(payload)}`;
  const signature = crypto.sign('sha256', Buffer.from(input), key).toString('base64url');
  return `${input}.${signature}`;
}

// Listen first: the issuer carries the port.
const server = http.createServer();
server.listen(port, '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: redirectUris,
      post_logout_redirect_uris: postLogoutRedirectUris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    jwks: { keys: [signingJwk] },
    cookies: { keys: ['bitesize-test-cookie-key'] },
    pkce: { required: () => true },
    // Scope-based claims in the ID token too (not only in userinfo).
    conformIdTokenClaims: false,
    claims: {
      openid: ['sub'],
      profile: ['preferred_username', 'name'],
      email: ['email', 'email_verified'],
      groups: ['groups'],
    },
    extraParams: ['test_user', 'test_groups', 'test_mode'],
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: { enabled: true },
      userinfo: { enabled: true },
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(_ctx, sub) {
      const account = accounts.get(sub);
      if (!account) return undefined;
      return {
        accountId: sub,
        async claims() {
          return {
            sub,
            preferred_username: account.user,
            name: account.user,
            email: `${account.user}@example.test`,
            email_verified: true,
            groups: account.groups,
          };
        },
      };
    },
  });

  // Loopback redirect URIs: any port.
  const withoutLoopbackPort = (value) => {
    try {
      const url = new URL(value);
      if (url.protocol === 'http:' && ['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname)) {
        url.port = '';
        return url.href;
      }
    } catch { /* not a URL: let the provider judge it */ }
    return value;
  };
  for (const method of ['redirectUriAllowed', 'postLogoutRedirectUriAllowed']) {
    const original = provider.Client.prototype[method];
    provider.Client.prototype[method] = function allowed(value) {
      return original.call(this, value) || original.call(this, withoutLoopbackPort(value));
    };
  }

  // The interaction: no form; signs in the user the request names, and consents for it.
  provider.use(async (ctx, next) => {
    if (ctx.method !== 'GET' || !ctx.path.startsWith('/interaction/')) {
      return next();
    }
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const { params, prompt } = details;
    let result;
    if (params.test_mode === 'deny') {
      result = { error: 'access_denied', error_description: 'the test user refused' };
    } else if (prompt.name === 'login') {
      const user = params.test_user || defaultUser;
      const groups = params.test_groups !== undefined ? list(params.test_groups) : defaultGroups;
      accounts.set(user, { user, groups, mode: params.test_mode || '' });
      result = { login: { accountId: user } };
    } else if (prompt.name === 'consent') {
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
      if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
      if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
      result = { consent: { grantId: await grant.save() } };
    } else {
      ctx.throw(400, `unexpected prompt ${prompt.name}`);
    }
    ctx.redirect(await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: true }));
    return undefined;
  });

  // Test modes: rewrite the ID token the token endpoint returns.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path !== '/token' || !ctx.body || typeof ctx.body.id_token !== 'string') return;
    const [headerPart, payloadPart] = ctx.body.id_token.split('.');
    const header = decodePart(headerPart);
    const payload = decodePart(payloadPart);
    const mode = accounts.get(payload.sub)?.mode;
    const now = Math.floor(Date.now() / 1000);
    let key = privateKey;
    switch (mode) {
      case 'expired': payload.iat = now - 1200; payload.exp = now - 600; break;
      case 'wrong_audience': payload.aud = 'someone-else'; break;
      case 'wrong_nonce': payload.nonce = 'not-the-nonce-that-was-sent'; break;
      case 'bad_signature': key = strangerKey; break;
      case 'userinfo_groups': delete payload.groups; break;
      default: return;
    }
    ctx.body = { ...ctx.body, id_token: sign(header, payload, key) };
  });

  server.on('request', provider.callback());
  console.log(`oidc-provider ready: issuer=${issuer} client_id=${clientId}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
