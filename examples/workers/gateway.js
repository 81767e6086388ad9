// An API gateway: path prefixes route to upstream groups of the config
// (fetch('http://GROUP/...') reaches the [[upstream]] named GROUP), calls
// need a bearer token signed with HMAC-SHA256 by env.API_SECRET, and every
// error is JSON.
//
//   [vars]
//   API_SECRET = "change me"
//   [[upstream]]
//   name = "users"
//   servers = ["127.0.0.1:9001"]
//   [[upstream]]
//   name = "orders"
//   servers = ["127.0.0.1:9002"]
//
// A token is "<user>.<base64url(HMAC-SHA256(secret, user))>".
const ROUTES = [
  { prefix: '/api/users/', group: 'users' },
  { prefix: '/api/orders/', group: 'orders' },
];

const error = (status, message) => Response.json({ error: message, status }, { status });

function b64url(bytes) {
  let s = '';
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

async function authorised(request, secret) {
  const auth = request.headers.get('authorization') ?? '';
  const [, token] = auth.match(/^Bearer\s+(\S+)$/) ?? [];
  if (!token || !secret) return null;
  const [user, mac] = token.split('.');
  const key = await crypto.subtle.importKey('raw', new TextEncoder().encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const expected = b64url(await crypto.subtle.sign('HMAC', key, new TextEncoder().encode(user)));
  const enc = new TextEncoder();
  return crypto.subtle.timingSafeEqual(enc.encode(expected), enc.encode(mac ?? '')) ? user : null;
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === '/api/health') return Response.json({ ok: true });
    const route = ROUTES.find((r) => url.pathname.startsWith(r.prefix));
    if (!route) return error(404, `no API at ${url.pathname}`);
    const user = await authorised(request, env.API_SECRET);
    if (!user) return error(401, 'missing or bad bearer token');

    const target = `http://${route.group}${url.pathname.slice(route.prefix.length - 1)}${url.search}`;
    const headers = new Headers(request.headers);
    headers.set('x-user', user);
    headers.delete('authorization');
    let response;
    try {
      response = await fetch(target, { method: request.method, headers, body: request.method === 'GET' || request.method === 'HEAD' ? undefined : await request.arrayBuffer() });
    } catch (e) {
      return error(502, `${route.group} is unreachable`);
    }
    const out = new Response(response.body, response);
    out.headers.set('x-gateway-route', route.group);
    return out;
  },
};
