#include "out/render.hpp"

#include <catch2/catch.hpp>

using sonic::out::Value;

TEST_CASE("JSON keeps insertion order and snake_case keys", "[render]")
{
	Value v = {{"changed", true}, {"cgroup_id", 44}, {"ports", "all"}};
	CHECK(sonic::out::render_json(v, false) == "{\"changed\":true,\"cgroup_id\":44,\"ports\":\"all\"}\n");
	CHECK(sonic::out::render_json(v, true) == "{\n  \"changed\": true,\n  \"cgroup_id\": 44,\n  \"ports\": \"all\"\n}\n");
}

TEST_CASE("text aligns labels and spells out booleans and nulls", "[render]")
{
	Value v = {{"changed", false}, {"cgroup_id", 7}, {"path", nullptr}};
	CHECK(sonic::out::render_text(v) == "changed:   no\ncgroup id: 7\npath:      -\n");
}

TEST_CASE("text renders arrays of objects as tables", "[render]")
{
	Value v = {{"programs",
		    {{{"id", 1}, {"name", "accel_msg"}, {"attached", {"a", "b"}}},
		     {{"id", 12}, {"name", "accel_sockops"}, {"attached", Value::array()}}}}};
	CHECK(sonic::out::render_text(v) == "programs:\n"
					    "  ID  NAME           ATTACHED\n"
					    "  1   accel_msg      a, b\n"
					    "  12  accel_sockops  -\n");
}

TEST_CASE("text nests objects with indentation", "[render]")
{
	Value v = {{"accel", {{"sockets", 2}, {"redirect_bytes", 100}}}};
	CHECK(sonic::out::render_text(v) == "accel:\n  sockets:        2\n  redirect bytes: 100\n");
}

TEST_CASE("the same value renders in both formats", "[render]")
{
	Value v = {{"changed", true}};
	std::ostringstream text, json;
	sonic::out::render(v, sonic::out::Format::Text, text);
	sonic::out::render(v, sonic::out::Format::Json, json);
	CHECK(text.str() == "changed: yes\n");
	CHECK(Value::parse(json.str()) == v);
}
