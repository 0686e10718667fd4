# vcpkg overlay port for mproc.
#
# Use it from a checkout of this repository:
#     vcpkg install mproc --overlay-ports=<repo>/ports
# (or list <repo>/ports under "overlay-ports" in a vcpkg-configuration.json).
#
# The source is this very checkout: the port lives in <repo>/ports/mproc,
# so the repository root is two levels up.  A port in a registry (such as
# microsoft/vcpkg) cannot do that; it would fetch a release instead:
#     vcpkg_from_github(
#         OUT_SOURCE_PATH SOURCE_PATH
#         REPO mproc/mproc
#         REF "v${VERSION}"
#         SHA512 <sha512 of the release tarball>
#         HEAD_REF main)
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)

# BUILD_SHARED_LIBS comes from VCPKG_LIBRARY_LINKAGE (vcpkg passes it);
# the installed mproc/config.h records the choice for consumers.
vcpkg_cmake_configure(
    SOURCE_PATH "${SOURCE_PATH}"
    OPTIONS
        -DMPROC_BUILD_TESTS=OFF
        -DMPROC_BUILD_EXAMPLES=OFF
        -DMPROC_BUILD_BENCH=OFF
        -DMPROC_BUILD_FUZZ=OFF
        -DMPROC_INSTALL=ON
)

vcpkg_cmake_install()
vcpkg_copy_pdbs()

# lib/cmake/mproc -> share/mproc, for both the release and debug trees.
vcpkg_cmake_config_fixup(PACKAGE_NAME mproc CONFIG_PATH lib/cmake/mproc)
vcpkg_fixup_pkgconfig()

# Headers and CMake files are the same in both configurations.
file(REMOVE_RECURSE
    "${CURRENT_PACKAGES_DIR}/debug/include"
    "${CURRENT_PACKAGES_DIR}/debug/share")

vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage"
     DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
