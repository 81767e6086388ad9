# Writes OUT, a C++ file defining `const char NAME[]` for each NAME=FILE in
# PAIRS, as raw string literals: the text files the binary carries (the
# JavaScript prelude, the example worker). Run at build time with
# cmake -DOUT=... -DPAIRS="NAME=FILE;..." -P EmbedText.cmake.
set(body "// Generated from the files named below by cmake/EmbedText.cmake. Do not edit.\n")
string(APPEND body "namespace sonic::js {\n")
foreach(pair ${PAIRS})
  string(REPLACE "=" ";" parts "${pair}")
  list(GET parts 0 name)
  list(GET parts 1 file)
  file(READ ${file} text)
  string(FIND "${text}" ")SONIC_EMBED\"" clash)
  if(NOT clash EQUAL -1)
    message(FATAL_ERROR "${file} contains the raw string delimiter")
  endif()
  string(APPEND body "extern const char ${name}[];\nconst char ${name}[] = R\"SONIC_EMBED(${text})SONIC_EMBED\";\n")
endforeach()
string(APPEND body "} // namespace sonic::js\n")
file(WRITE ${OUT}.tmp "${body}")
configure_file(${OUT}.tmp ${OUT} COPYONLY)
