# One helper per kind of target, so every component is declared the same way.
#
#   stepflow_cc_library(NAME foo SRCS a.cc b.cc DEPS bar absl::status)
#   stepflow_cc_test(NAME foo_test SRCS foo_test.cc DEPS foo [TIMEOUT 60] [LABELS l])
#   stepflow_cc_binary(NAME stepflow-gateway SRCS main.cc DEPS gateway)
#
# Binaries link TCMalloc (see the top-level CMakeLists.txt); tests keep
# glibc's allocator.
#
# Libraries are static and named stepflow_<NAME>; DEPS may name other stepflow
# components by their short NAME or any imported target.

function(_stepflow_resolve_deps out)
  set(resolved)
  foreach(dep IN LISTS ARGN)
    if(TARGET stepflow_${dep})
      list(APPEND resolved stepflow_${dep})
    else()
      list(APPEND resolved ${dep})
    endif()
  endforeach()
  set(${out} ${resolved} PARENT_SCOPE)
endfunction()

function(stepflow_cc_library)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS" ${ARGN})
  _stepflow_resolve_deps(deps ${ARG_DEPS})
  add_library(stepflow_${ARG_NAME} STATIC ${ARG_SRCS})
  target_link_libraries(stepflow_${ARG_NAME} PUBLIC ${deps})
endfunction()

function(stepflow_cc_binary)
  cmake_parse_arguments(ARG "" "NAME" "SRCS;DEPS" ${ARGN})
  _stepflow_resolve_deps(deps ${ARG_DEPS})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${deps} PkgConfig::TCMALLOC)
endfunction()

function(stepflow_cc_test)
  cmake_parse_arguments(ARG "" "NAME;TIMEOUT" "SRCS;DEPS;LABELS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 60)
  endif()
  _stepflow_resolve_deps(deps ${ARG_DEPS})
  add_executable(${ARG_NAME} ${ARG_SRCS})
  target_link_libraries(${ARG_NAME} PRIVATE ${deps} GTest::gtest GTest::gmock GTest::gtest_main)
  add_test(NAME ${ARG_NAME} COMMAND ${ARG_NAME})
  set_tests_properties(${ARG_NAME} PROPERTIES TIMEOUT ${ARG_TIMEOUT}
    LABELS "${ARG_LABELS}"
    ENVIRONMENT "STEPFLOW_BUILD_DIR=${CMAKE_BINARY_DIR};STEPFLOW_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
endfunction()
