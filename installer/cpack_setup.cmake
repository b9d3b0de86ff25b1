# The `package` preset's half of installer/packaging.cmake: a relocatable install tree, and CPack for the .deb and
# the .tar.gz. `cpack --preset package` (after `cmake --build --preset package`) writes both to build/package/packages.
if(FKV_HAVE_CUDA)
  message(FATAL_ERROR "FKV_PACKAGING needs a build without CUDA (FKV_CUDA=OFF, as in `cmake --preset package`): "
                      "the packages must run on machines without an NVIDIA driver, and this build links the CUDA runtime")
endif()

# Relocatable: the binaries look for libraries in ../lib beside them first, which is where the .tar.gz bundles them
# (in the .deb, /usr/bin/../lib holds none of ours, and the system's are found as usual). --disable-new-dtags writes
# DT_RPATH rather than DT_RUNPATH: a RUNPATH serves only the executable's own needs, while an RPATH also serves the
# libraries it loads (Qt's libraries loading each other, the platform plugin loading libQt6XcbQpa), so the bundled
# copies are used throughout and nothing falls through to a system Qt of another version.
set_target_properties(freekv freekv-desk PROPERTIES INSTALL_RPATH "$ORIGIN/../lib")
target_link_options(freekv PRIVATE -Wl,--disable-new-dtags)
target_link_options(freekv-desk PRIVATE -Wl,--disable-new-dtags)

# The install test needs a model without downloading one: this writes a tiny seeded GGUF with the engine's own
# synthetic-model writer. It is a build tool, never installed.
add_executable(fkv_make_test_model ${FKV_INSTALLER_DIR}/make_test_model.cpp)
target_link_libraries(fkv_make_test_model PRIVATE fkv_internal)
target_compile_options(fkv_make_test_model PRIVATE ${FKV_WARNINGS})

# The user guide and the troubleshooting page travel with the program: the machine it is installed on may have no
# network to read them online.
install(FILES ${PROJECT_SOURCE_DIR}/docs/user-guide.md ${PROJECT_SOURCE_DIR}/docs/troubleshooting.md
        DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/freekv-desk)
file(GLOB FKV_GUIDE_IMAGES ${PROJECT_SOURCE_DIR}/docs/images/*.png)
list(FILTER FKV_GUIDE_IMAGES EXCLUDE REGEX "/bench_[^/]*$")
install(FILES ${FKV_GUIDE_IMAGES} DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/freekv-desk/images)

# Where this Qt keeps its plugins (Qt's CMake package says); the .tar.gz carries the few the app needs.
set(FKV_QT_PLUGIN_DIR "${QT6_INSTALL_PREFIX}/${QT6_INSTALL_PLUGINS}")
if(NOT EXISTS "${FKV_QT_PLUGIN_DIR}/platforms")
  message(FATAL_ERROR "expected Qt's plugins in ${FKV_QT_PLUGIN_DIR} (QT6_INSTALL_PREFIX/QT6_INSTALL_PLUGINS), "
                      "found no platforms/ folder there")
endif()
configure_file(${FKV_INSTALLER_DIR}/bundle_libs.cmake.in ${CMAKE_BINARY_DIR}/bundle_libs.cmake @ONLY)

set(CPACK_GENERATOR "DEB;TGZ")
set(CPACK_PACKAGE_NAME "freekv-desk")
set(CPACK_PACKAGE_VENDOR "FreeKV Desk")
set(CPACK_PACKAGE_CONTACT "FreeKV Desk developers <dev@freekv.local>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "offline long-document assistant with a local language model")
set(CPACK_PACKAGE_DESCRIPTION "FreeKV Desk answers questions about long documents (txt, md, html, pdf) with a \
GGUF language model that runs on this machine, without a network. It keeps each document's KV cache on disk, so \
reopening a document needs no prefill. Includes the desktop app freekv-desk and the command-line tool freekv.")
set(CPACK_PACKAGE_FILE_NAME "freekv-desk-${PROJECT_VERSION}-linux-x86_64")  # the .tar.gz and its top folder
set(CPACK_PACKAGE_CHECKSUM SHA256)  # a .sha256 beside each package, to check a copy carried to an offline machine
set(CPACK_STRIP_FILES ON)
set(CPACK_PRE_BUILD_SCRIPTS ${CMAKE_BINARY_DIR}/bundle_libs.cmake)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # freekv-desk_VERSION_amd64.deb
set(CPACK_DEBIAN_PACKAGE_SECTION "utils")
# Depends is read off the binaries' shared-library needs by dpkg-shlibdeps (Qt 6, sentencepiece, poppler-cpp,
# sqlite3, libstdc++, libc); the Qt platform plugins come with libqt6gui6. Text needs at least one font.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "fonts-dejavu-core")

include(CPack)
