# Installation and packaging: binaries, libkadmesh, its header, kadmesh.pc,
# the CMake package (find_package(kadmesh)), man pages, the systemd unit,
# and `cpack -G DEB`.  Paths follow GNUInstallDirs.
include(CMakePackageConfigHelpers)

install(TARGETS dht-node dht-ctl dht-lookup dht-sim
        RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS kadmesh kadmesh_static EXPORT kadmeshTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/kadmesh.h
              ${PROJECT_SOURCE_DIR}/include/kadmesh_uv.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

set(KM_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/kadmesh)
install(EXPORT kadmeshTargets NAMESPACE kadmesh:: DESTINATION ${KM_CMAKE_DIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/kadmeshConfig.cmake.in
  ${CMAKE_BINARY_DIR}/kadmeshConfig.cmake INSTALL_DESTINATION ${KM_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/kadmeshConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/kadmeshConfig.cmake
              ${CMAKE_BINARY_DIR}/kadmeshConfigVersion.cmake
        DESTINATION ${KM_CMAKE_DIR})

file(RELATIVE_PATH KM_PC_PREFIX_REL /p/${CMAKE_INSTALL_LIBDIR}/pkgconfig /p)
string(REGEX REPLACE "/$" "" KM_PC_PREFIX_REL "${KM_PC_PREFIX_REL}")
configure_file(${PROJECT_SOURCE_DIR}/packaging/kadmesh.pc.in
               ${CMAKE_BINARY_DIR}/kadmesh.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/kadmesh.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

file(GLOB KM_MAN_PAGES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/man/*.1)
install(FILES ${KM_MAN_PAGES} DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)

# The unit names the installed binary, so it is written at install time,
# when the prefix is known (cmake --install --prefix, or cpack's /usr).
set(KM_SYSTEMD_UNIT_DIR lib/systemd/system CACHE STRING
    "Where dht-node.service goes, relative to the prefix")
install(CODE "
  set(KM_UNIT_BINDIR \"\${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_BINDIR}\")
  set(unit \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${KM_SYSTEMD_UNIT_DIR}/dht-node.service\")
  message(STATUS \"Installing: \${unit}\")
  configure_file(\"${PROJECT_SOURCE_DIR}/packaging/dht-node.service.in\" \"\${unit}\" @ONLY)
  list(APPEND CMAKE_INSTALL_MANIFEST_FILES \"\${unit}\")
")

set(CPACK_PACKAGE_NAME kadmesh)
set(CPACK_PACKAGE_VENDOR kadmesh)
set(CPACK_PACKAGE_CONTACT "kadmesh maintainers <kadmesh@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "peer-to-peer discovery node: Kademlia DHT with a broadcast overlay")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr) # a .deb lives in /usr
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libc6 (>= 2.36), libuv1 (>= 1.44), libssl3 (>= 3.0), libcjson1 (>= 1.7)")
set(CPACK_GENERATOR DEB)
include(CPack)
