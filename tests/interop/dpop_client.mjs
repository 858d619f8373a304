// An independent DPoP client (RFC 9449) built on panva's `jose`, for the
// interop tests: it shares no code with flask-ccguard.
//
// Usage: node dpop_client.mjs < spec.json
//   spec: {"token_url", "client_id", "client_secret", "resource"?,
//          "proofs": [{"method", "url", "iat"?, "other_key"?}]}
// Generates an ES256 key, obtains a DPoP-bound client-credentials token
// (RFC 9449 §5) with a proof for POST token_url, then signs one proof per
// entry of `proofs` for that token (`ath`, RFC 9449 §4.2); `other_key` signs
// with a second, unrelated key; `iat` overrides the issue time.
// Prints one JSON line: {"access_token", "token_type", "jkt", "proofs": [...]}.
import * as crypto from 'node:crypto';

import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT } from 'jose';

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

async function makeKey() {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  return { privateKey, jwk: await exportJWK(publicKey) };
}

function proof(key, method, url, { accessToken, iat } = {}) {
  const claims = { htm: method, htu: url, jti: crypto.randomUUID() };
  if (accessToken) {
    claims.ath = crypto.createHash('sha256').update(accessToken).digest('base64url');
  }
  return new SignJWT(claims)
    .setProtectedHeader({ typ: 'dpop+jwt', alg: 'ES256', jwk: key.jwk })
    .setIssuedAt(iat ?? Math.floor(Date.now() / 1000))
    .sign(key.privateKey);
}

const spec = await readStdin();
const key = await makeKey();
const other = await makeKey();

const form = new URLSearchParams({
  grant_type: 'client_credentials',
  client_id: spec.client_id,
  client_secret: spec.client_secret,
});
if (spec.resource) form.set('resource', spec.resource);
const response = await fetch(spec.token_url, {
  method: 'POST',
  headers: { DPoP: await proof(key, 'POST', spec.token_url) },
  body: form,
});
const body = await response.json();
if (response.status !== 200) {
  process.stderr.write(`token request failed: HTTP ${response.status} ${JSON.stringify(body)}\n`);
  process.exit(1);
}
const proofs = [];
for (const p of spec.proofs || []) {
  proofs.push(await proof(p.other_key ? other : key, p.method, p.url, {
    accessToken: body.access_token,
    iat: p.iat,
  }));
}
process.stdout.write(`${JSON.stringify({
  access_token: body.access_token,
  token_type: body.token_type,
  jkt: await calculateJwkThumbprint(key.jwk),
  proofs,
})}\n`);
