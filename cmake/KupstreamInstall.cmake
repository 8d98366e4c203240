# What `cmake --install` puts in a prefix: the headers, the library, a CMake package
# (lib/cmake/kupstream: kupstreamConfig.cmake, its version file and kupstream::kupstream) and
# lib/pkgconfig/kupstream.pc. The examples (kup-gateway, kup-watch) are the optional component
# "examples" (cmake --install <dir> --component examples); tests and benchmarks never install.
include(CMakePackageConfigHelpers)

set(KUP_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/kupstream)
set(KUP_ANDROID_SSL OFF)
if(TARGET kupstream_tls_ssl)
  set(KUP_ANDROID_SSL ON)
endif()

install(TARGETS kupstream EXPORT kupstreamTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_COMPONENT Unspecified
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
# Debian's llhttp comes as sources, compiled into a static helper library that a static
# kupstream needs at link time (a shared kupstream carries it inside, hidden).
if(TARGET kupstream_llhttp AND NOT BUILD_SHARED_LIBS)
  install(TARGETS kupstream_llhttp EXPORT kupstreamTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
endif()
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/kupstream DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${KUP_GENERATED_INCLUDE}/kupstream/version.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/kupstream)

install(EXPORT kupstreamTargets NAMESPACE kupstream:: DESTINATION ${KUP_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/templates/kupstreamConfig.cmake.in
  ${PROJECT_BINARY_DIR}/kupstreamConfig.cmake INSTALL_DESTINATION ${KUP_CMAKE_DIR})
# 0.x: only the same minor version is compatible (docs/compatibility.md); from 1.0 on, SameMajorVersion.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/kupstreamConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/kupstreamConfig.cmake ${PROJECT_BINARY_DIR}/kupstreamConfigVersion.cmake
  DESTINATION ${KUP_CMAKE_DIR})

# pkg-config: libuv is public (headers take uv_loop_t&); the rest only matters to static links.
if(KUP_UV_TARGET STREQUAL "libuv::uv_a")
  set(KUP_PC_REQUIRES "libuv-static")
else()
  set(KUP_PC_REQUIRES "libuv")
endif()
set(KUP_PC_REQUIRES_PRIVATE "")
set(KUP_PC_LIBS_PRIVATE "")
if(BUILD_SHARED_LIBS)
  set(KUP_PC_KIND "shared")
else()
  set(KUP_PC_KIND "static")
  set(KUP_PC_REQUIRES_PRIVATE "fmt simdjson yaml-cpp")
  if(TARGET kupstream_llhttp)
    string(APPEND KUP_PC_LIBS_PRIVATE "-lkupstream_llhttp ")
  else()
    string(APPEND KUP_PC_REQUIRES_PRIVATE " libllhttp")
  endif()
  if(KUP_ANDROID_SSL)
    string(APPEND KUP_PC_LIBS_PRIVATE
      "-L${KUP_ANDROID_SSL_LIBDIR} -lssl -lcrypto -Wl,--enable-new-dtags,-rpath,${KUP_ANDROID_SSL_LIBDIR} ")
  else()
    string(APPEND KUP_PC_REQUIRES_PRIVATE " openssl")
  endif()
  string(APPEND KUP_PC_LIBS_PRIVATE "-pthread -lstdc++")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/templates/kupstream.pc.in ${PROJECT_BINARY_DIR}/kupstream.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/kupstream.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
