// A real OAuth 2.0 authorization server for bearer-guard's interop tests: panva/oidc-provider
// (version pinned in package.json / package-lock.json) issuing JWT access tokens (RFC 9068) with
// the client-credentials grant, for one resource indicator.
//
// Started by tests/support/interop.rs; usable by hand too:
//
//   node provider.mjs [--alg RS256|ES256|PS256|EdDSA] [--ttl SECONDS]
//
// (or env INTEROP_ALG / INTEROP_TTL). It listens on 127.0.0.1 on an ephemeral port and talks to its
// parent with one JSON object per line:
//
//   stdout  READY {"issuer":..., "jwks_uri":..., "token_endpoint":..., "kid":..., ...}
//   stdin   ROTATE   a new key for the token algorithm becomes current; the old one stays published
//   stdout  ROTATED {"kid":<new current kid>, "kids":[...published kids...]}
//   stdin   RETIRE   every key of the token algorithm except the current one is unpublished
//   stdout  RETIRED {"kid":..., "kids":[...]}
//   stdin   COUNTS   how many requests each endpoint has served so far
//   stdout  COUNTS {"jwks":N, "discovery":N, "token":N}
//   stdin   STOP     (or EOF on stdin, SIGTERM, SIGINT): close the server and exit
//
// Everything else the provider prints goes to stderr, so stdout stays a clean protocol channel.
//
// Keys are generated at start-up: one RSA (RS256), one RSA (PS256), one P-256 (ES256) and one
// Ed25519 (EdDSA) key, all published. Access tokens are signed with the key of `--alg`.
//
// oidc-provider takes its signing keys at construction and has no API to change them afterwards,
// so a rotation builds a new Provider with the new key set (same issuer, same clients, same
// configuration) and swaps it in behind the same HTTP server: the port never changes.

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

// Keep stdout for the protocol: oidc-provider prints its notices with console.info.
console.info = console.error;
console.log = console.error;

const { values: args } = parseArgs({
  options: {
    alg: { type: 'string', default: process.env.INTEROP_ALG ?? 'RS256' },
    ttl: { type: 'string', default: process.env.INTEROP_TTL ?? '300' },
  },
});

const SUPPORTED_ALGS = ['RS256', 'PS256', 'ES256', 'EdDSA'];
const tokenAlg = args.alg;
if (!SUPPORTED_ALGS.includes(tokenAlg)) {
  fail(`unsupported --alg ${tokenAlg}; one of ${SUPPORTED_ALGS.join(', ')}`);
}
const accessTokenTTL = Number.parseInt(args.ttl, 10);
if (!Number.isSafeInteger(accessTokenTTL) || accessTokenTTL < 1) {
  fail(`--ttl must be a positive number of seconds, got ${args.ttl}`);
}

// The API the tokens are for (the resource indicator, which oidc-provider puts in `aud`), and a
// second API, so a test can obtain a valid token for the wrong audience.
const PAYMENTS = 'urn:bearer-guard:payments';
const OTHER = 'urn:bearer-guard:other';
const RESOURCE_SERVERS = {
  [PAYMENTS]: 'payments:read payments:write',
  [OTHER]: 'other:read',
};

const CLIENTS = [
  { client_id: 'billing', client_secret: 'billing-secret', scope: 'payments:read payments:write other:read' },
  { client_id: 'reporter', client_secret: 'reporter-secret', scope: 'payments:read' },
].map((client) => ({
  ...client,
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  token_endpoint_auth_method: 'client_secret_basic',
}));

function generateJwk(alg) {
  const { privateKey } = (() => {
    switch (alg) {
      case 'RS256':
      case 'PS256':
        return generateKeyPairSync('rsa', { modulusLength: 2048 });
      case 'ES256':
        return generateKeyPairSync('ec', { namedCurve: 'P-256' });
      case 'EdDSA':
        return generateKeyPairSync('ed25519');
      default:
        throw new Error(`no key type for ${alg}`);
    }
  })();
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, alg, use: 'sig', kid: `${alg.toLowerCase()}-${randomUUID().slice(0, 8)}` };
}

// Private JWKs, published in this order; `current` is the kid access tokens are signed with.
let keys = SUPPORTED_ALGS.map(generateJwk);
let current = keys.find((jwk) => jwk.alg === tokenAlg).kid;

let provider;
let handler;
let issuer;

function buildProvider() {
  const signingKid = current;
  const instance = new Provider(issuer, {
    clients: CLIENTS,
    jwks: { keys: keys.map((jwk) => ({ ...jwk })) },
    scopes: ['openid', ...new Set(Object.values(RESOURCE_SERVERS).flatMap((scope) => scope.split(' ')))],
    cookies: { keys: [randomUUID()] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: false },
      revocation: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => undefined,
        useGrantedResource: () => false,
        getResourceServerInfo(ctx, resourceIndicator) {
          const scope = RESOURCE_SERVERS[resourceIndicator];
          if (scope === undefined) {
            throw new Provider.errors.InvalidTarget(`unknown resource indicator ${resourceIndicator}`);
          }
          return {
            scope,
            audience: resourceIndicator,
            accessTokenTTL,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: tokenAlg, kid: signingKid } },
          };
        },
      },
    },
    ttl: {
      ClientCredentials: (ctx, token) => token.resourceServer?.accessTokenTTL ?? accessTokenTTL,
    },
    renderError(ctx, out) {
      ctx.type = 'json';
      ctx.body = out;
    },
  });
  instance.on('server_error', (ctx, err) => console.error('server_error', err));
  instance.on('grant.error', (ctx, err) => console.error('grant.error', err.message, err.error_description ?? ''));
  return instance;
}

function publishedKids() {
  return keys.map((jwk) => jwk.kid);
}

function say(tag, body) {
  process.stdout.write(`${tag} ${JSON.stringify(body)}\n`);
}

function fail(message) {
  process.stderr.write(`provider.mjs: ${message}\n`);
  process.exit(2);
}

// Requests served per endpoint, for tests that assert how often a cache fetched the JWKS.
const counts = { jwks: 0, discovery: 0, token: 0 };
const COUNTED = {
  '/jwks': 'jwks',
  '/.well-known/openid-configuration': 'discovery',
  '/.well-known/oauth-authorization-server': 'discovery',
  '/token': 'token',
};

const server = createServer((req, res) => {
  const counted = COUNTED[new URL(req.url, 'http://localhost').pathname];
  if (counted) counts[counted] += 1;
  handler(req, res);
});

function shutdown(code = 0) {
  server.close();
  server.closeAllConnections();
  process.exit(code);
}

process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  issuer = `http://127.0.0.1:${port}`;
  provider = buildProvider();
  handler = provider.callback();
  say('READY', {
    issuer,
    jwks_uri: `${issuer}/jwks`,
    token_endpoint: `${issuer}/token`,
    discovery: `${issuer}/.well-known/openid-configuration`,
    audience: PAYMENTS,
    other_audience: OTHER,
    alg: tokenAlg,
    kid: current,
    kids: publishedKids(),
    ttl: accessTokenTTL,
    pid: process.pid,
  });
});

const commands = createInterface({ input: process.stdin });
commands.on('line', (line) => {
  switch (line.trim()) {
    case 'ROTATE': {
      const fresh = generateJwk(tokenAlg);
      keys = [fresh, ...keys];
      current = fresh.kid;
      provider = buildProvider();
      handler = provider.callback();
      say('ROTATED', { kid: current, kids: publishedKids() });
      break;
    }
    case 'RETIRE': {
      keys = keys.filter((jwk) => jwk.alg !== tokenAlg || jwk.kid === current);
      provider = buildProvider();
      handler = provider.callback();
      say('RETIRED', { kid: current, kids: publishedKids() });
      break;
    }
    case 'COUNTS':
      say('COUNTS', counts);
      break;
    case 'STOP':
      shutdown(0);
      break;
    case '':
      break;
    default:
      say('ERROR', { message: `unknown command ${line.trim()}` });
  }
});
// The parent went away (or closed our stdin): do not outlive it.
commands.on('close', () => shutdown(0));
