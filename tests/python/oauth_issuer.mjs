// A real OIDC issuer for tests/python/test_oauth.py: npm oauth2-mock-server (discovery,
// JWKS, authorization code + PKCE, token endpoint; real RS256 signatures), plus:
//   - tokens carry `aud` = the RFC 8707 `resource` the client asked for, and the scope of
//     the authorization request, also in the token response (the mock would say "dummy");
//   - POST /register: RFC 7591 dynamic client registration (the mock has none);
//   - POST /test/token {kid, sub, scope, aud, expires_in, groups, preferred_username}:
//     a token with exactly these claims, signed with key `kid`;
//   - POST /test/rotate {kid}: a new signing key in the JWKS (key rotation).
// Usage: node oauth_issuer.mjs PORT MODULE_DIR   (prints "READY <issuer url>")
import { randomUUID } from 'node:crypto';

const [port, moduleDir] = process.argv.slice(2);
const { OAuth2Server, Events } = await import(`${moduleDir}/oauth2-mock-server/dist/index.mjs`);

const server = new OAuth2Server();
await server.issuer.keys.generate('RS256', { kid: 'k1' });

const scopeOfCode = new Map();
server.service.on(Events.BeforeAuthorizeRedirect, (redirect, req) => {
  const url = new URL(req.url, 'http://x');
  const code = redirect.url.searchParams.get('code');
  if (code) scopeOfCode.set(code, url.searchParams.get('scope') ?? '');
});
server.service.on(Events.BeforeTokenSigning, (token, req) => {
  const body = req.body ?? {};
  if (body.resource) token.payload.aud = body.resource;
  if (body.grant_type === 'authorization_code' && scopeOfCode.has(body.code)) {
    token.payload.scope = scopeOfCode.get(body.code);
  }
  if (body.grant_type === 'refresh_token' && body.scope) token.payload.scope = body.scope;
  token.payload.preferred_username = token.payload.sub === 'johndoe' ? 'john' : token.payload.sub;
  token.payload.groups = ['sre'];
});
server.service.on(Events.BeforeResponse, (resp, req) => {
  const body = req.body ?? {};
  if (body.grant_type === 'authorization_code' && scopeOfCode.has(body.code)) {
    resp.body.scope = scopeOfCode.get(body.code);
  }
});
server.service.on(Events.BeforeWellKnownOpenIdConfiguration, (resp) => {
  resp.body.registration_endpoint = `${server.issuer.url}/register`;
  resp.body.scopes_supported = ['openid', 'mcp:read', 'mcp:write'];
});

const readJson = async (req) => req.body ?? {};
function send(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

server.service.addRoute('POST', '/register', async (req, res) => {
  const meta = await readJson(req);
  send(res, 201, { ...meta, client_id: randomUUID(), client_id_issued_at: Math.floor(Date.now() / 1000) });
});
server.service.addRoute('POST', '/test/token', async (req, res) => {
  const b = await readJson(req);
  const token = await server.issuer.buildToken({
    kid: b.kid ?? 'k1',
    expiresIn: b.expires_in ?? 3600,
    scopesOrTransform: (_header, payload) => {
      for (const k of ['sub', 'scope', 'aud', 'groups', 'preferred_username', 'azp']) {
        if (b[k] !== undefined) payload[k] = b[k];
      }
      if (b.nbf_in !== undefined) payload.nbf = Math.floor(Date.now() / 1000) + b.nbf_in;
    },
  });
  send(res, 200, { access_token: token });
});
server.service.addRoute('POST', '/test/rotate', async (req, res) => {
  const b = await readJson(req);
  await server.issuer.keys.generate('RS256', { kid: b.kid });
  send(res, 200, { kid: b.kid });
});

await server.start(Number(port), '127.0.0.1');
console.log(`READY ${server.issuer.url}`);
process.on('SIGTERM', async () => {
  await server.stop();
  process.exit(0);
});
