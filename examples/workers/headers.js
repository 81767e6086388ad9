// Header injection and sanitising, in the service-worker form: requests go
// to their origin with a request id and without headers that must not
// cross the edge; responses lose what leaks the origin's software and gain
// security headers.
//
//   sonic run --mode reverse --upstream 127.0.0.1:9000 --script examples/workers/headers.js
const STRIP_REQUEST = ['x-forwarded-host', 'x-original-url', 'x-rewrite-url', 'proxy'];
const STRIP_RESPONSE = ['server', 'x-powered-by', 'x-aspnet-version'];
const SECURITY = {
  'strict-transport-security': 'max-age=63072000; includeSubDomains',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'strict-origin-when-cross-origin',
};

addEventListener('fetch', (event) => {
  const { headers } = event.request;
  STRIP_REQUEST.forEach((name) => headers.delete(name));
  if (!headers.has('x-request-id')) headers.set('x-request-id', crypto.randomUUID());
  // No respondWith: the request goes to its origin with these edits.
});

addEventListener('response', (event) => {
  const { headers } = event.response;
  STRIP_RESPONSE.forEach((name) => headers.delete(name));
  for (const [name, value] of Object.entries(SECURITY)) headers.set(name, value);
});
