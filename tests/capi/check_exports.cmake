# The shared library exports the C API and nothing else: every dynamic symbol it defines
# is a cdp_* function declared in cdp.h, and every function cdp.h declares is exported.
# (abseil, simdjson, xxHash and the C++ internals must stay hidden: STYLE.md.)
#
#   cmake -DNM=nm -DLIB=libcdpcore.so -DHEADER=capi/cdp.h -P check_exports.cmake

cmake_minimum_required(VERSION 3.20) # IN_LIST

execute_process(COMMAND "${NM}" -D --defined-only "${LIB}"
                OUTPUT_VARIABLE listing ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} -D --defined-only ${LIB} failed (${rc}): ${err}")
endif()

# Provided by the linker in every shared object; not ours to hide.
set(linker_symbols _init _fini _edata _end __bss_start)

# The functions cdp.h declares: lines like "CDP_API int32_t cdp_engine_open(...".
file(STRINGS "${HEADER}" api_lines REGEX "^CDP_API ")
set(declared)
foreach(line IN LISTS api_lines)
  if(line MATCHES "(cdp_[a-z0-9_]+)\\(")
    list(APPEND declared ${CMAKE_MATCH_1})
  endif()
endforeach()
list(LENGTH declared n_declared)
if(n_declared EQUAL 0)
  message(FATAL_ERROR "found no CDP_API function in ${HEADER}")
endif()

set(exported)
set(bad)
string(REPLACE "\n" ";" lines "${listing}")
foreach(line IN LISTS lines)
  # "0000000000012340 T cdp_version" or "... T cdp_version@@CDP_0"; type A entries are
  # version-node names, not code or data.
  if(NOT line MATCHES "^[0-9a-fA-F]* *([A-Za-z]) ([^@ ]+)")
    continue()
  endif()
  set(type ${CMAKE_MATCH_1})
  set(sym ${CMAKE_MATCH_2})
  if(type STREQUAL "A" OR sym IN_LIST linker_symbols)
    continue()
  endif()
  if(sym IN_LIST declared)
    list(APPEND exported ${sym})
  elseif(sym MATCHES "^cdp_")
    list(APPEND bad "${sym} (starts with cdp_ but is not declared in cdp.h)")
  else()
    list(APPEND bad "${sym}")
  endif()
endforeach()

foreach(fn IN LISTS declared)
  if(NOT fn IN_LIST exported)
    list(APPEND bad "${fn} (declared in cdp.h but not exported)")
  endif()
endforeach()

if(bad)
  list(LENGTH bad n_bad)
  list(JOIN bad "\n  " text)
  message(FATAL_ERROR "${LIB}: ${n_bad} symbol problem(s):\n  ${text}")
endif()
message(STATUS "${LIB} exports exactly the ${n_declared} functions of cdp.h")
