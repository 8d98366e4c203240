# Finds every dependency. First the library's own CMake package (the vcpkg layout),
# then the Debian 12 layout. Never vendored.
include(CheckSymbolExists)
find_package(PkgConfig QUIET)

# --- Node.js: its headers (uv.h, openssl/) for KUPSTREAM_UV_FROM=node / KUPSTREAM_TLS=node. The
# symbols are not linked: the node executable exports them to the addon that loads kupstream.
if(KUPSTREAM_UV_FROM STREQUAL "node" OR KUPSTREAM_TLS STREQUAL "node")
  find_program(KUP_NODE_EXECUTABLE node REQUIRED)
  file(REAL_PATH "${KUP_NODE_EXECUTABLE}" KUP_NODE_REAL)
  get_filename_component(KUP_NODE_PREFIX "${KUP_NODE_REAL}" DIRECTORY)
  find_path(KUPSTREAM_NODE_INCLUDE_DIR uv.h PATHS "${KUP_NODE_PREFIX}/../include/node" /usr/include/node /usr/include
            NO_DEFAULT_PATH REQUIRED)
  add_library(kupstream_node_headers INTERFACE)
  if(NOT KUPSTREAM_NODE_INCLUDE_DIR STREQUAL "/usr/include")  # Debian's node uses the system's
    target_include_directories(kupstream_node_headers SYSTEM INTERFACE ${KUPSTREAM_NODE_INCLUDE_DIR})
  endif()
endif()

# --- libuv: vcpkg exports libuv::uv / libuv::uv_a; Debian ships pkg-config only.
if(KUPSTREAM_UV_FROM STREQUAL "node")
  set(KUP_UV_TARGET kupstream_node_headers)
elseif(NOT KUPSTREAM_UV_FROM STREQUAL "system")
  message(FATAL_ERROR "KUPSTREAM_UV_FROM must be system or node, not '${KUPSTREAM_UV_FROM}'")
else()
  find_package(libuv CONFIG QUIET)
  if(TARGET libuv::uv_a AND NOT BUILD_SHARED_LIBS)
    set(KUP_UV_TARGET libuv::uv_a)
  elseif(TARGET libuv::uv)
    set(KUP_UV_TARGET libuv::uv)
  elseif(TARGET libuv::uv_a)
    set(KUP_UV_TARGET libuv::uv_a)
  else()
    pkg_check_modules(LIBUV REQUIRED IMPORTED_TARGET libuv)
    set(KUP_UV_TARGET PkgConfig::LIBUV)
  endif()
endif()

# --- llhttp: vcpkg exports llhttp::llhttp_static / llhttp::llhttp; Debian's node-llhttp
# ships the generated C sources, which we compile into a private static library.
find_package(llhttp CONFIG QUIET)
if(TARGET llhttp::llhttp_static)
  set(KUP_LLHTTP_TARGET llhttp::llhttp_static)
elseif(TARGET llhttp::llhttp)
  set(KUP_LLHTTP_TARGET llhttp::llhttp)
else()
  find_path(KUP_LLHTTP_INCLUDE llhttp.h PATHS /usr/share/include/llhttp /usr/include/llhttp REQUIRED)
  find_path(KUP_LLHTTP_SOURCE_DIR llhttp.c PATHS /usr/share/llhttp REQUIRED NO_DEFAULT_PATH)
  add_library(kupstream_llhttp STATIC
    ${KUP_LLHTTP_SOURCE_DIR}/api.c ${KUP_LLHTTP_SOURCE_DIR}/http.c ${KUP_LLHTTP_SOURCE_DIR}/llhttp.c)
  target_include_directories(kupstream_llhttp SYSTEM PUBLIC ${KUP_LLHTTP_INCLUDE})
  set_target_properties(kupstream_llhttp PROPERTIES POSITION_INDEPENDENT_CODE ON)
  set(KUP_LLHTTP_TARGET kupstream_llhttp)
endif()

# --- TLS. boringssl: vcpkg's boringssl port answers find_package(OpenSSL); Debian's
# android-libboringssl-dev lives in /usr/include/android and /usr/lib/<multiarch>/android.
if(KUPSTREAM_TLS STREQUAL "boringssl")
  set(KUP_ANDROID_SSL_LIBDIR "/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/android")
  # Under vcpkg's toolchain, vcpkg's boringssl port wins even where the Debian package is installed.
  if(NOT VCPKG_TOOLCHAIN AND EXISTS "/usr/include/android/openssl/base.h" AND EXISTS "${KUP_ANDROID_SSL_LIBDIR}/libssl.so")
    add_library(kupstream_tls_crypto SHARED IMPORTED)
    set_target_properties(kupstream_tls_crypto PROPERTIES
      IMPORTED_LOCATION "${KUP_ANDROID_SSL_LIBDIR}/libcrypto.so"
      INTERFACE_INCLUDE_DIRECTORIES "/usr/include/android")
    add_library(kupstream_tls_ssl SHARED IMPORTED)
    set_target_properties(kupstream_tls_ssl PROPERTIES
      IMPORTED_LOCATION "${KUP_ANDROID_SSL_LIBDIR}/libssl.so"
      INTERFACE_INCLUDE_DIRECTORIES "/usr/include/android"
      INTERFACE_LINK_LIBRARIES kupstream_tls_crypto)
    set(KUP_TLS_TARGETS kupstream_tls_ssl kupstream_tls_crypto)
    # The build tree and the install both find the Android libraries through a RUNPATH.
    set(CMAKE_BUILD_RPATH "${KUP_ANDROID_SSL_LIBDIR};${CMAKE_BUILD_RPATH}")
    set(CMAKE_INSTALL_RPATH "${KUP_ANDROID_SSL_LIBDIR};${CMAKE_INSTALL_RPATH}")
    add_link_options(LINKER:--enable-new-dtags)
  else()
    find_package(OpenSSL REQUIRED)
    set(CMAKE_REQUIRED_LIBRARIES OpenSSL::SSL)
    check_symbol_exists(OPENSSL_IS_BORINGSSL "openssl/base.h" KUP_FOUND_BORINGSSL)
    unset(CMAKE_REQUIRED_LIBRARIES)
    if(NOT KUP_FOUND_BORINGSSL)
      message(FATAL_ERROR "KUPSTREAM_TLS=boringssl but the OpenSSL package found is not BoringSSL; "
                          "install android-libboringssl-dev or vcpkg's boringssl, or use -DKUPSTREAM_TLS=openssl")
    endif()
    set(KUP_TLS_TARGETS OpenSSL::SSL OpenSSL::Crypto)
  endif()
elseif(KUPSTREAM_TLS STREQUAL "node")
  set(KUP_TLS_TARGETS kupstream_node_headers)
elseif(KUPSTREAM_TLS STREQUAL "openssl")
  find_package(OpenSSL 1.1.1 REQUIRED)
  set(KUP_TLS_TARGETS OpenSSL::SSL OpenSSL::Crypto)
else()
  message(FATAL_ERROR "KUPSTREAM_TLS must be boringssl, openssl or node, not '${KUPSTREAM_TLS}'")
endif()

find_package(fmt CONFIG REQUIRED)
find_package(simdjson CONFIG REQUIRED)
find_package(yaml-cpp CONFIG REQUIRED)
if(TARGET yaml-cpp::yaml-cpp)
  set(KUP_YAML_TARGET yaml-cpp::yaml-cpp)
else()
  set(KUP_YAML_TARGET yaml-cpp)
endif()
if(KUPSTREAM_BUILD_TESTS)
  find_package(doctest CONFIG REQUIRED)
endif()
if(KUPSTREAM_BUILD_BENCH)
  find_package(benchmark CONFIG REQUIRED)
endif()
find_package(Threads REQUIRED)
