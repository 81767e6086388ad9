# bpf_object(NAME SOURCE [DEPENDS headers...])
#
# Compiles a BPF C source with clang -target bpf into NAME.bpf.o, generates
# NAME.skel.h with `bpftool gen skeleton`, and exposes both through an
# INTERFACE library target NAME_skel whose include directory holds the header.
# The skeleton embeds the object, so the final executable is self-contained.
find_program(BPF_CLANG NAMES clang clang-14 clang-15 clang-16 REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)

execute_process(COMMAND ${CMAKE_C_COMPILER} -print-multiarch
                OUTPUT_VARIABLE BPF_MULTIARCH OUTPUT_STRIP_TRAILING_WHITESPACE
                ERROR_QUIET)
if(BPF_MULTIARCH)
  set(BPF_SYS_INCLUDE -idirafter /usr/include/${BPF_MULTIARCH})
endif()

function(bpf_object name src)
  cmake_parse_arguments(ARG "" "" "DEPENDS" ${ARGN})
  set(obj ${CMAKE_CURRENT_BINARY_DIR}/${name}.bpf.o)
  set(skel ${CMAKE_CURRENT_BINARY_DIR}/${name}.skel.h)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -mcpu=v3 -Wall -Werror
            -I${CMAKE_SOURCE_DIR}/bpf -I${CMAKE_CURRENT_SOURCE_DIR} ${BPF_SYS_INCLUDE}
            -MD -MF ${obj}.d
            -c ${CMAKE_CURRENT_SOURCE_DIR}/${src} -o ${obj}
    DEPFILE ${obj}.d
    DEPENDS ${src} ${ARG_DEPENDS}
    COMMENT "BPF ${name}.bpf.o"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND sh -c "'${BPFTOOL}' gen skeleton '${obj}' name ${name}_bpf > '${skel}.tmp' && mv '${skel}.tmp' '${skel}'"
    DEPENDS ${obj}
    COMMENT "BPF skeleton ${name}.skel.h"
    VERBATIM)
  add_custom_target(${name}_skel_gen DEPENDS ${skel})
  add_library(${name}_skel INTERFACE)
  target_include_directories(${name}_skel INTERFACE ${CMAKE_CURRENT_BINARY_DIR} ${CMAKE_CURRENT_SOURCE_DIR})
  add_dependencies(${name}_skel ${name}_skel_gen)
endfunction()
