// libFuzzer target: the response parser (interim responses, chunked,
// Content-Length and until-close bodies), whole and split. The last input
// byte, when odd, makes it the answer to a HEAD request.
#include "trace.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const bool head = size > 0 && (data[size - 1] & 1) && data[size - 1] != '\n';
	fuzz::check_splits(sonic::http::Kind::Response, data, size, head);
	return 0;
}
