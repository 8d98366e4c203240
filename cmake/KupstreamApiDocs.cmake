# The Doxygen API reference of include/kupstream: cmake --build <dir> --target api-docs writes
# <dir>/api-docs/html. Warnings are errors (KUPSTREAM_API_DOCS_WERROR, on by default), so every
# public declaration stays documented; scripts/test builds it.
find_package(Doxygen QUIET)
option(KUPSTREAM_API_DOCS_WERROR "Treat Doxygen warnings as errors" ON)
if(DOXYGEN_FOUND)
  set(KUP_API_DOCS_DIR ${PROJECT_BINARY_DIR}/api-docs)
  if(KUPSTREAM_API_DOCS_WERROR)
    set(KUP_DOXYGEN_WARN_AS_ERROR FAIL_ON_WARNINGS)
  else()
    set(KUP_DOXYGEN_WARN_AS_ERROR NO)
  endif()
  configure_file(${PROJECT_SOURCE_DIR}/docs/api/Doxyfile.in ${PROJECT_BINARY_DIR}/Doxyfile @ONLY)
  add_custom_target(api-docs
    COMMAND ${CMAKE_COMMAND} -E rm -rf ${KUP_API_DOCS_DIR}
    COMMAND ${DOXYGEN_EXECUTABLE} ${PROJECT_BINARY_DIR}/Doxyfile
    WORKING_DIRECTORY ${PROJECT_BINARY_DIR}
    COMMENT "API reference (Doxygen) -> ${KUP_API_DOCS_DIR}/html"
    VERBATIM)
endif()
