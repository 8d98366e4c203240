# kupstream as a vcpkg port (vcpkg's registry conventions). Static or shared follows the triplet.
vcpkg_from_github(
    OUT_SOURCE_PATH SOURCE_PATH
    REPO kupstream/kupstream
    REF "v${VERSION}"
    SHA512 1f7833595285a5175a22d330dc5fa34dd34caaa2489aaad5c0574076d8815eeb8f43b5e0fd057db1be2a52cebe1212afb56e4d2716e95b534cfaac03e2b5d6ac
    HEAD_REF main
)

# BoringSSL and OpenSSL both provide the OpenSSL API and the same library names: one only.
if("boringssl" IN_LIST FEATURES AND "openssl" IN_LIST FEATURES)
    message(FATAL_ERROR "kupstream: the features boringssl and openssl exclude each other; "
                        "use kupstream[core,openssl] to build with OpenSSL")
elseif("openssl" IN_LIST FEATURES)
    set(KUPSTREAM_TLS openssl)
else()
    set(KUPSTREAM_TLS boringssl)
endif()

vcpkg_cmake_configure(
    SOURCE_PATH "${SOURCE_PATH}"
    OPTIONS
        -DKUPSTREAM_TLS=${KUPSTREAM_TLS}
        -DKUPSTREAM_BUILD_TESTS=OFF
        -DKUPSTREAM_BUILD_BENCH=OFF
        -DKUPSTREAM_BUILD_EXAMPLES=OFF
        -DKUPSTREAM_WERROR=OFF
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(CONFIG_PATH lib/cmake/kupstream)
vcpkg_fixup_pkgconfig()

file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug/include")
file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
