// libFuzzer target: the request parser, heads and bodies (chunked with
// extensions and trailers, Content-Length), pipelined, whole and split.
#include "trace.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz::check_splits(sonic::http::Kind::Request, data, size, false);
	return 0;
}
