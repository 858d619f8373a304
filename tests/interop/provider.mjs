// Local OAuth 2.0 client-credentials issuer for flask-ccguard interop tests.
//
// Runs the certified `oidc-provider` package (panva) on plain HTTP on a
// loopback address and issues JWT access tokens (RFC 9068 `at+jwt`) for one
// resource server per signing algorithm.
//
// Usage:
//   node provider.mjs --port 8123 [--host 127.0.0.1] [--no-openid-discovery]
//                     [--ttl 300]
//   (PORT / HOST / CCGUARD_NO_OPENID_DISCOVERY=1 / CCGUARD_AT_TTL env work too)
//
// On success prints exactly one line `READY <issuer>` to stdout.
//
// Admin hooks (test-only, loopback only):
//   POST /__ccguard/rotate-keys[?keep_previous=1]
//        -> replaces the signing JWKS with freshly generated keys (new kids).
//           With keep_previous=1 the previous public keys stay published in
//           jwks_uri (graceful rotation) but are no longer used for signing.
//           Answers JSON {"kids": [...signing kids...], "published": [...]}.
//   GET  /__ccguard/state -> same JSON without rotating.
//
// DPoP (RFC 9449) is on: a token request with a DPoP proof gets a DPoP-bound
// token. Client `mtls-client` gets certificate-bound tokens (RFC 8705) for
// the PEM in the `x-client-cert` header (emulating a TLS-terminating proxy).
//   SIGUSR2 -> same as POST rotate-keys (hard rotation); prints
//              `ROTATED <kid>,<kid>,...` to stdout.
//
// Rotation is implemented by building a brand-new Provider instance with the
// new keystore and swapping the request handler behind the single
// http.Server: oidc-provider reads its keystore once in the constructor and
// has no public API to replace it.
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.PORT },
    host: { type: 'string', default: process.env.HOST || '127.0.0.1' },
    'no-openid-discovery': {
      type: 'boolean',
      default: process.env.CCGUARD_NO_OPENID_DISCOVERY === '1',
    },
    ttl: { type: 'string', default: process.env.CCGUARD_AT_TTL || '300' },
  },
  strict: true,
});

if (!args.port || !/^\d+$/.test(args.port)) {
  process.stderr.write('provider.mjs: --port <n> (or PORT env) is required\n');
  process.exit(2);
}
const PORT = Number(args.port);
const HOST = args.host;
const NO_OPENID_DISCOVERY = args['no-openid-discovery'];
const TTL = Number(args.ttl);
const ISSUER = `http://${HOST.includes(':') ? `[${HOST}]` : HOST}:${PORT}`;

// ---------------------------------------------------------------- fixtures

const SCOPES = 'assets:read assets:write';

const RESOURCES = {
  RS256: 'urn:ccguard:rs256',
  PS256: 'urn:ccguard:ps256',
  ES256: 'urn:ccguard:es256',
  EdDSA: 'urn:ccguard:eddsa',
};
const DEFAULT_RESOURCE = RESOURCES.RS256;
const RESOURCE_ALG = new Map(Object.entries(RESOURCES).map(([alg, uri]) => [uri, alg]));

// Secrets are fixed on purpose: the Python fixture knows them.
const CLIENTS = [
  {
    client_id: 'reader',
    client_secret: 'reader-secret-0123456789abcdef',
    token_endpoint_auth_method: 'client_secret_post',
    scope: 'assets:read',
    roles: ['guest'],
  },
  {
    client_id: 'admin',
    client_secret: 'admin-secret-0123456789abcdef',
    token_endpoint_auth_method: 'client_secret_post',
    scope: 'assets:read assets:write',
    roles: ['archivist_administrator'],
  },
  {
    client_id: 'basic-client',
    client_secret: 'basic-secret-0123456789abcdef',
    token_endpoint_auth_method: 'client_secret_basic',
    scope: 'assets:read',
    roles: ['guest'],
  },
  {
    // RFC 8705 §3: every token of this client is bound to its certificate.
    client_id: 'mtls-client',
    client_secret: 'mtls-secret-0123456789abcdef',
    token_endpoint_auth_method: 'client_secret_post',
    tls_client_certificate_bound_access_tokens: true,
    scope: 'assets:read',
    roles: ['guest'],
  },
].map((c) => ({
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  ...c,
}));

// ---------------------------------------------------------------- keys

let generation = 0;

function generateJwks() {
  generation += 1;
  const tag = `${generation}-${crypto.randomBytes(4).toString('hex')}`;
  const jwk = (type, opts, kid) => ({
    ...crypto.generateKeyPairSync(type, opts).privateKey.export({ format: 'jwk' }),
    kid,
    use: 'sig',
  });
  return {
    keys: [
      // one RSA key serves both RS256 and PS256 (no `alg` member)
      jwk('rsa', { modulusLength: 2048 }, `rsa-${tag}`),
      jwk('ec', { namedCurve: 'P-256' }, `ec-${tag}`),
      jwk('ed25519', {}, `okp-${tag}`),
    ],
  };
}

// private JWKS used for signing + public-only JWKS kept for graceful rotation
let signingJwks = generateJwks();
let retiredPublicKeys = [];

function publicJwk(k) {
  const {
    d, p, q, dp, dq, qi, ...pub
  } = k;
  return pub;
}

// ---------------------------------------------------------------- provider

function buildConfiguration() {
  return {
    clients: structuredClone(CLIENTS),
    // client `scope` metadata may only use values listed here
    scopes: ['openid', 'offline_access', ...SCOPES.split(' ')],
    jwks: structuredClone(signingJwks),
    extraClientMetadata: {
      properties: ['roles'],
      validator(ctx, key, value) {
        if (key === 'roles' && value !== undefined) {
          if (!Array.isArray(value) || !value.every((r) => typeof r === 'string')) {
            throw new errors.InvalidClientMetadata('roles must be an array of strings');
          }
        }
      },
    },
    async extraTokenClaims(ctx, token) {
      if (token.kind !== 'ClientCredentials') return undefined;
      const client = ctx.oidc.client?.clientId === token.clientId
        ? ctx.oidc.client
        : await ctx.oidc.provider.Client.find(token.clientId);
      return { roles: [...(client?.roles || [])] };
    },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      // RFC 9449: a token request carrying a DPoP proof gets a DPoP-bound
      // token (`token_type` DPoP, `cnf.jkt` in the JWT access token).
      dPoP: { enabled: true },
      // RFC 8705 §3: certificate-bound tokens (`cnf["x5t#S256"]`). The
      // provider speaks plain HTTP on loopback, so it reads the client
      // certificate from the `x-client-cert` header (a URL-encoded PEM, as
      // nginx's $ssl_client_escaped_cert): this emulates a TLS-terminating
      // proxy in front of it. Test-only; a real deployment must strip the
      // header from client requests.
      mTLS: {
        enabled: true,
        certificateBoundAccessTokens: true,
        getCertificate(ctx) {
          const value = ctx.get('x-client-cert');
          return value ? decodeURIComponent(value) : undefined;
        },
      },
      resourceIndicators: {
        enabled: true,
        defaultResource(ctx, client, oneOf) {
          return oneOf || DEFAULT_RESOURCE;
        },
        useGrantedResource() {
          return true;
        },
        getResourceServerInfo(ctx, resourceIndicator, client) {
          const alg = RESOURCE_ALG.get(resourceIndicator);
          if (!alg) throw new errors.InvalidTarget();
          // oidc-provider only filters by the resource server's scopes; the
          // per-client allow-list is applied here.
          const allowed = new Set((client?.scope || '').split(' '));
          return {
            scope: SCOPES.split(' ').filter((s) => allowed.has(s)).join(' '),
            audience: resourceIndicator,
            accessTokenTTL: TTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg } },
          };
        },
      },
    },
    enabledJWA: {
      idTokenSigningAlgValues: ['RS256', 'PS256', 'ES256', 'EdDSA', 'Ed25519'],
    },
    ttl: { ClientCredentials: TTL },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  };
}

function buildProvider() {
  const provider = new Provider(ISSUER, buildConfiguration());
  if (retiredPublicKeys.length) {
    // Publish the retired public keys after the active ones. The keystore used
    // for signing only contains the new private keys.
    provider.use(async (ctx, next) => {
      await next();
      if (ctx.path === '/jwks' && ctx.status === 200 && ctx.body?.keys) {
        ctx.body = { keys: [...ctx.body.keys, ...retiredPublicKeys] };
      }
    });
  }
  provider.on('server_error', (ctx, err) => {
    process.stderr.write(`server_error: ${err.stack || err}\n`);
  });
  return provider;
}

let current = buildProvider();
let handler = current.callback();

function state() {
  return {
    issuer: ISSUER,
    generation,
    kids: signingJwks.keys.map((k) => k.kid),
    published: [...signingJwks.keys, ...retiredPublicKeys].map((k) => k.kid),
  };
}

function rotate({ keepPrevious = false } = {}) {
  const previous = signingJwks.keys.map(publicJwk);
  const nextJwks = generateJwks();
  const nextRetired = keepPrevious ? [...previous, ...retiredPublicKeys] : [];
  const oldJwks = signingJwks;
  const oldRetired = retiredPublicKeys;
  signingJwks = nextJwks;
  retiredPublicKeys = nextRetired;
  try {
    current = buildProvider();
  } catch (err) {
    signingJwks = oldJwks;
    retiredPublicKeys = oldRetired;
    throw err;
  }
  handler = current.callback();
  return state();
}

// ---------------------------------------------------------------- server

function sendJson(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(data),
    'cache-control': 'no-store',
  });
  res.end(data);
}

const server = http.createServer((req, res) => {
  const { pathname, searchParams } = new URL(req.url, ISSUER);
  // oidc-provider derives endpoint URLs from the request's Host header;
  // pin it so metadata always matches the issuer (localhost vs 127.0.0.1).
  req.headers.host = new URL(ISSUER).host;

  if (pathname === '/__ccguard/rotate-keys') {
    if (req.method !== 'POST') return sendJson(res, 405, { error: 'method_not_allowed' });
    req.resume();
    try {
      const keepPrevious = ['1', 'true', 'yes'].includes(searchParams.get('keep_previous') || '');
      return sendJson(res, 200, rotate({ keepPrevious }));
    } catch (err) {
      return sendJson(res, 500, { error: 'server_error', error_description: String(err) });
    }
  }
  if (pathname === '/__ccguard/state') {
    return sendJson(res, 200, state());
  }

  // oidc-provider (v9) itself serves the same metadata document at both
  // /.well-known/openid-configuration and the RFC 8414 path
  // /.well-known/oauth-authorization-server; this mode hides the former.
  if (NO_OPENID_DISCOVERY && pathname === '/.well-known/openid-configuration') {
    return sendJson(res, 404, { error: 'not_found' });
  }

  return handler(req, res);
});

process.on('SIGUSR2', () => {
  try {
    const s = rotate();
    process.stdout.write(`ROTATED ${s.kids.join(',')}\n`);
  } catch (err) {
    process.stderr.write(`rotation failed: ${err.stack || err}\n`);
  }
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}

server.on('error', (err) => {
  process.stderr.write(`provider.mjs: ${err.message}\n`);
  process.exit(1);
});

server.listen(PORT, HOST, () => {
  process.stdout.write(`READY ${ISSUER}\n`);
});
