// sonic's embedded example worker (builtin:example.js), run by `sonic run`
// with no configuration. It is written in plain ES5 so that it needs no
// translation, and shows both halves of a worker: a request answered at
// the edge, and requests passed on with their headers edited.
//
//   curl -x 127.0.0.1:8080 http://sonic.test/          answered by this worker
//   curl -x 127.0.0.1:8080 -i http://example.com/      proxied; see x-sonic-worker
addEventListener('fetch', function (event) {
	var url = new URL(event.request.url);
	if (url.hostname === 'sonic.test') {
		event.respondWith(Response.json({
			engine: 'sonic',
			worker: 'builtin:example.js',
			method: event.request.method,
			path: url.pathname,
			query: Object.fromEntries(url.searchParams),
			client: event.client.address,
			userAgent: event.request.headers.get('user-agent')
		}));
		return;
	}
	// No respondWith: the request goes to its origin, with this header.
	event.request.headers.set('x-forwarded-by', 'sonic');
});

addEventListener('response', function (event) {
	event.response.headers.set('x-sonic-worker', 'example');
});
