# llhttp, Node's HTTP/1.1 parser, compiled from the sources Debian's
# node-llhttp installs (/usr/share/llhttp and its header under
# /usr/share/include/llhttp) into the static library `llhttp`.
find_path(LLHTTP_INCLUDE_DIR llhttp.h
          PATHS /usr/share/include/llhttp /usr/include/llhttp /usr/include
          NO_DEFAULT_PATH REQUIRED)
find_path(LLHTTP_SOURCE_DIR llhttp.c PATHS /usr/share/llhttp NO_DEFAULT_PATH REQUIRED)

add_library(llhttp STATIC
  ${LLHTTP_SOURCE_DIR}/llhttp.c
  ${LLHTTP_SOURCE_DIR}/api.c
  ${LLHTTP_SOURCE_DIR}/http.c)
target_include_directories(llhttp SYSTEM PUBLIC ${LLHTTP_INCLUDE_DIR})
set_target_properties(llhttp PROPERTIES C_STANDARD 99 POSITION_INDEPENDENT_CODE ON)
# Generated code: its warnings are not ours to fix.
target_compile_options(llhttp PRIVATE -w -O2)
