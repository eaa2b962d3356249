# The installed version file (SameMajorVersion): a project asking for another major
# version, or for a newer release than the one installed, must not get this one. The
# consumer project checks that the installed version itself is accepted.
# usage: cmake -DPREFIX=DIR -DVERSION=X.Y.Z -P check_version.cmake
string(REGEX MATCH "^([0-9]+)[.]([0-9]+)" _ "${VERSION}")
math(EXPR next_major "${CMAKE_MATCH_1} + 1")
math(EXPR next_minor "${CMAKE_MATCH_2} + 1")
foreach(wanted "${next_major}.0" "${CMAKE_MATCH_1}.${next_minor}")
  unset(cdpcore_DIR CACHE)
  find_package(cdpcore ${wanted} CONFIG QUIET PATHS "${PREFIX}" NO_DEFAULT_PATH)
  if(cdpcore_FOUND)
    message(FATAL_ERROR "find_package(cdpcore ${wanted}) accepted the installed ${VERSION}")
  endif()
  message(STATUS "find_package(cdpcore ${wanted}) refuses the installed ${VERSION}")
endforeach()
