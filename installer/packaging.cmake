# Offline installation: man pages, hicolor icons, and (in the `package` preset) the .deb and the relocatable .tar.gz.
# Included from the top-level CMakeLists.txt after app/ and ui/. The packages come from a build without CUDA: it runs
# on every x86-64 machine, so no CUDA runtime is bundled or depended on (the CUDA EULA would allow cudart and cuBLAS,
# but a CPU-only package needs neither; a CUDA build is for a machine that has the toolkit anyway).
option(FKV_PACKAGING "Build the .deb and .tar.gz packages (cpack --preset package)" OFF)
include(GNUInstallDirs)

set(FKV_INSTALLER_DIR ${CMAKE_CURRENT_LIST_DIR})
set(FKV_ICON_SIZES 16 22 24 32 48 64 128 256)  # the hicolor sizes desktops look up for an application icon

# Man pages, compressed as Debian's policy asks (gzip -n: no name or time stamp, so rebuilds are byte-identical).
find_program(FKV_GZIP gzip REQUIRED)
foreach(page freekv.1 freekv-desk.1)
  add_custom_command(OUTPUT ${CMAKE_BINARY_DIR}/man/${page}.gz
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
    COMMAND ${FKV_GZIP} -9 -n -c ${FKV_INSTALLER_DIR}/man/${page} > ${CMAKE_BINARY_DIR}/man/${page}.gz
    DEPENDS ${FKV_INSTALLER_DIR}/man/${page} VERBATIM)
  list(APPEND FKV_MAN_PAGES ${CMAKE_BINARY_DIR}/man/${page}.gz)
endforeach()
add_custom_target(fkv_man_pages ALL DEPENDS ${FKV_MAN_PAGES})
install(FILES ${FKV_MAN_PAGES} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

# PNG icons rendered from the one SVG source at build time, so no binary is checked in. rsvg-convert comes from
# librsvg2-bin (scripts/setup.sh installs it); a developer build without it installs the SVG alone.
find_program(FKV_RSVG_CONVERT rsvg-convert)
if(FKV_RSVG_CONVERT)
  set(icon_svg ${PROJECT_SOURCE_DIR}/resources/icons/freekv-desk.svg)
  foreach(size ${FKV_ICON_SIZES})
    set(png ${CMAKE_BINARY_DIR}/icons/${size}x${size}/freekv-desk.png)
    add_custom_command(OUTPUT ${png}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/icons/${size}x${size}
      COMMAND ${FKV_RSVG_CONVERT} --width ${size} --height ${size} --output ${png} ${icon_svg}
      DEPENDS ${icon_svg} VERBATIM)
    list(APPEND FKV_ICON_PNGS ${png})
    install(FILES ${png} DESTINATION ${CMAKE_INSTALL_DATADIR}/icons/hicolor/${size}x${size}/apps)
  endforeach()
  add_custom_target(fkv_icons ALL DEPENDS ${FKV_ICON_PNGS})
elseif(FKV_PACKAGING)
  message(FATAL_ERROR "FKV_PACKAGING needs rsvg-convert to render the PNG icons (apt-get install librsvg2-bin)")
else()
  message(STATUS "FreeKV: rsvg-convert not found; only the SVG icon is installed (apt-get install librsvg2-bin)")
endif()

if(FKV_PACKAGING)
  include(${FKV_INSTALLER_DIR}/cpack_setup.cmake)
endif()
