// A small web application firewall: requests whose query, path or form body
// look like SQL injection or cross-site scripting are refused with 403 and
// a JSON error; the rest go to the origin unchanged. Abusive clients can be
// handed to the kernel: with the fw family loaded, sonic.block() drops
// their next packets in XDP.
//
//   sonic run --mode reverse --upstream 127.0.0.1:9000 --script examples/workers/waf.js
const SQLI = [
  /\bunion\b[\s\S]*\bselect\b/i,
  /\bselect\b[\s\S]*\bfrom\b[\s\S]*\b(where|information_schema)\b/i,
  /'\s*(or|and)\s*'?\d+'?\s*=\s*'?\d+/i,
  /;\s*(drop|delete|truncate|alter|insert|update)\s+\w+/i,
  /\b(sleep|benchmark|pg_sleep)\s*\(/i,
  /--\s*$|\/\*.*\*\//,
];
const XSS = [/<\s*script\b/i, /\bon(error|load|click|mouseover)\s*=/i, /javascript\s*:/i, /<\s*(iframe|object|embed)\b/i];

const strikes = new Map(); // client address -> attacks seen

function verdict(text) {
  for (const re of SQLI) if (re.test(text)) return 'sql-injection';
  for (const re of XSS) if (re.test(text)) return 'xss';
  return null;
}

function decoded(s) {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    let found = verdict(decoded(url.pathname + ' ' + url.search));
    const type = request.headers.get('content-type') ?? '';
    if (!found && request.method === 'POST' && /urlencoded|json|text/.test(type)) {
      found = verdict(decoded(await request.clone().text()));
    }
    if (!found) return fetch(request);

    const client = request.sonic?.ip ?? 'unknown';
    const seen = (strikes.get(client) ?? 0) + 1;
    strikes.set(client, seen);
    console.warn(`blocked ${found} from ${client} (${seen}): ${request.method} ${url.pathname}`);
    if (env.BLOCK_AFTER && seen >= Number(env.BLOCK_AFTER)) {
      try {
        sonic.block(client, { ttl: 600, reason: `waf: ${found}` });
      } catch (e) {
        console.warn(`not blocked: ${e.message}`);
      }
    }
    return Response.json({ error: 'request blocked', reason: found }, { status: 403 });
  },
};
