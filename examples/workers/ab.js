// An A/B split by cookie: a new visitor is put in bucket A or B at random
// (env.B_PERCENT percent in B, default 50) and keeps it through a cookie.
// Bucket B's requests go to the path prefix env.B_PREFIX (default "/b")
// of the same origin; every response says which bucket served it.
//
//   sonic run --mode reverse --upstream 127.0.0.1:9000 --script examples/workers/ab.js
const COOKIE = 'sonic-ab';

function bucketOf(request, percentB) {
  const cookies = request.headers.get('cookie') ?? '';
  const m = cookies.match(new RegExp(`(?:^|;\\s*)${COOKIE}=(A|B)(?:;|$)`));
  if (m) return { bucket: m[1], fresh: false };
  const roll = crypto.getRandomValues(new Uint8Array(1))[0] / 256;
  return { bucket: roll * 100 < percentB ? 'B' : 'A', fresh: true };
}

export default {
  async fetch(request, env) {
    const percentB = Number(env.B_PERCENT ?? 50);
    const { bucket, fresh } = bucketOf(request, percentB);
    let forwarded = request;
    if (bucket === 'B') {
      const url = new URL(request.url);
      url.pathname = (env.B_PREFIX ?? '/b') + url.pathname;
      forwarded = new Request(url.toString(), request);
    }
    const origin = await fetch(forwarded);
    const response = new Response(origin.body, origin);
    response.headers.set('x-ab-bucket', bucket);
    if (fresh) response.headers.append('set-cookie', `${COOKIE}=${bucket}; Path=/; Max-Age=2592000; SameSite=Lax`);
    return response;
  },
};
