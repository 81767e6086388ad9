# Duktape, the embedded JavaScript engine of worker scripts, compiled from
# the sources Debian's duktape-dev installs (/usr/share/duktape) into the
# static library `duktape`. Its duk_config.h is Debian's with two options
# turned on that worker limits need: the bytecode interrupt counter and the
# execution-timeout check, which calls sonic_js_timed_out(heap udata).
find_path(DUKTAPE_SOURCE_DIR duktape.c PATHS /usr/share/duktape NO_DEFAULT_PATH REQUIRED)

set(DUKTAPE_OUT ${CMAKE_BINARY_DIR}/duktape)
file(READ ${DUKTAPE_SOURCE_DIR}/duk_config.h DUK_CONFIG)
foreach(option "#undef DUK_USE_EXEC_TIMEOUT_CHECK" "#undef DUK_USE_INTERRUPT_COUNTER")
  string(FIND "${DUK_CONFIG}" "${option}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "Duktape's duk_config.h has no '${option}' line to turn on")
  endif()
endforeach()
string(REPLACE "#undef DUK_USE_EXEC_TIMEOUT_CHECK"
  "#if defined(__cplusplus)\nextern \"C\" int sonic_js_timed_out(void *udata);\n#else\nextern int sonic_js_timed_out(void *udata);\n#endif\n#define DUK_USE_EXEC_TIMEOUT_CHECK(udata) sonic_js_timed_out(udata)"
  DUK_CONFIG "${DUK_CONFIG}")
string(REPLACE "#undef DUK_USE_INTERRUPT_COUNTER" "#define DUK_USE_INTERRUPT_COUNTER" DUK_CONFIG "${DUK_CONFIG}")
file(WRITE ${DUKTAPE_OUT}/duk_config.h.new "${DUK_CONFIG}")
configure_file(${DUKTAPE_OUT}/duk_config.h.new ${DUKTAPE_OUT}/duk_config.h COPYONLY)
# duktape.h includes "duk_config.h" from its own directory.
configure_file(${DUKTAPE_SOURCE_DIR}/duktape.h ${DUKTAPE_OUT}/duktape.h COPYONLY)
configure_file(${DUKTAPE_SOURCE_DIR}/duktape.c ${DUKTAPE_OUT}/duktape.c COPYONLY)

add_library(duktape STATIC ${DUKTAPE_OUT}/duktape.c)
target_include_directories(duktape SYSTEM PUBLIC ${DUKTAPE_OUT})
set_target_properties(duktape PROPERTIES C_STANDARD 99 POSITION_INDEPENDENT_CODE ON)
# Third-party code: its warnings are not ours to fix. -fexceptions: the
# fatal handler (core/js) throws through Duktape's C frames to unwind a
# heap that cannot go on.
target_compile_options(duktape PRIVATE -w -O2 -fexceptions)
target_link_libraries(duktape PUBLIC m)
