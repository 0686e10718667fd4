# FindCriterion
# -------------
# Finds the Criterion test framework and defines the imported target
# Criterion::Criterion.  Debian ships a pkg-config file but no CMake
# config, so pkg-config is tried first, then a plain search (Criterion_ROOT
# or CMAKE_PREFIX_PATH pointing at an install, e.g. the MinGW or MSVC-mode
# build made by scripts/criterion-cross mingw|msvc).
#
# A static Windows Criterion (MinGW, MSVC) also needs its bundled nanomsg and
# nanopb, the Winsock libraries and CRITERION_BUILDING_DLL; they are added
# to the target's interface.

find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND AND NOT CMAKE_CROSSCOMPILING)
  pkg_check_modules(PC_CRITERION QUIET criterion)
endif()

find_path(Criterion_INCLUDE_DIR criterion/criterion.h
          HINTS ${PC_CRITERION_INCLUDE_DIRS})
find_library(Criterion_LIBRARY NAMES criterion
             HINTS ${PC_CRITERION_LIBRARY_DIRS})

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Criterion
  REQUIRED_VARS Criterion_LIBRARY Criterion_INCLUDE_DIR)

if(Criterion_FOUND AND NOT TARGET Criterion::Criterion)
  add_library(Criterion::Criterion UNKNOWN IMPORTED)
  set_target_properties(Criterion::Criterion PROPERTIES
    IMPORTED_LOCATION "${Criterion_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${Criterion_INCLUDE_DIR}")
  if(WIN32)
    get_filename_component(_crit_dir "${Criterion_LIBRARY}" DIRECTORY)
    find_library(Criterion_NANOPB_LIBRARY protobuf_nanopb_static
                 HINTS "${_crit_dir}")
    find_library(Criterion_NANOMSG_LIBRARY nanomsg HINTS "${_crit_dir}")
    set_property(TARGET Criterion::Criterion APPEND PROPERTY
      INTERFACE_COMPILE_DEFINITIONS CRITERION_BUILDING_DLL)
    set_property(TARGET Criterion::Criterion APPEND PROPERTY
      INTERFACE_LINK_LIBRARIES
        "${Criterion_NANOPB_LIBRARY}" "${Criterion_NANOMSG_LIBRARY}"
        ws2_32 mswsock)
  endif()
endif()
mark_as_advanced(Criterion_INCLUDE_DIR Criterion_LIBRARY)
