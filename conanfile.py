"""Conan 2 recipe for mproc, built from this checkout.

    conan create . --build=missing            # builds and runs test_package/
    conan create . -o "mproc/*:shared=True"   # the shared library

Consumers:  requires = "mproc/0.1.0", then find_package(mproc CONFIG
REQUIRED) + mproc::mproc (CMakeDeps), or pkg-config module "mproc"
(PkgConfigDeps).
"""
import os

from conan import ConanFile
from conan.tools.cmake import CMake, CMakeDeps, CMakeToolchain, cmake_layout
from conan.tools.files import copy, rmdir

required_conan_version = ">=2.0"


class MprocConan(ConanFile):
    name = "mproc"
    version = "0.1.0"
    description = "Python's multiprocessing for C"
    license = "MIT"
    homepage = "https://github.com/mproc/mproc"
    topics = ("multiprocessing", "processes", "ipc", "shared-memory", "c")
    package_type = "library"

    settings = "os", "arch", "compiler", "build_type"
    options = {"shared": [True, False], "fPIC": [True, False]}
    default_options = {"shared": False, "fPIC": True}

    # What the top-level CMakeLists.txt needs with tests, examples and
    # benchmarks off (it add_subdirectory's those only when enabled).
    exports_sources = ("CMakeLists.txt", "cmake/*", "include/*", "src/*",
                       "LICENSE")

    def config_options(self):
        if self.settings.os == "Windows":
            del self.options.fPIC

    def configure(self):
        if self.options.shared:
            self.options.rm_safe("fPIC")
        # A C library: the C++ standard library and standard don't matter.
        self.settings.rm_safe("compiler.libcxx")
        self.settings.rm_safe("compiler.cppstd")

    def requirements(self):
        # HMAC-SHA256 for authkeys: BCrypt on Windows and CommonCrypto on
        # macOS come with the OS; elsewhere OpenSSL's libcrypto.
        if self.settings.os not in ("Windows", "Macos"):
            self.requires("openssl/[>=1.1 <4]")

    def layout(self):
        cmake_layout(self)

    def generate(self):
        tc = CMakeToolchain(self)  # sets BUILD_SHARED_LIBS and fPIC
        tc.cache_variables["MPROC_BUILD_TESTS"] = False
        tc.cache_variables["MPROC_BUILD_EXAMPLES"] = False
        tc.cache_variables["MPROC_BUILD_BENCH"] = False
        tc.cache_variables["MPROC_BUILD_FUZZ"] = False
        tc.cache_variables["MPROC_INSTALL"] = True  # the default; explicit
        tc.generate()
        CMakeDeps(self).generate()  # no dependencies yet; ready for some

    def build(self):
        cmake = CMake(self)
        cmake.configure()
        cmake.build()

    def package(self):
        copy(self, "LICENSE", src=self.source_folder,
             dst=os.path.join(self.package_folder, "licenses"))
        cmake = CMake(self)
        cmake.install()
        # Conan's generators (CMakeDeps, PkgConfigDeps) write these files
        # for consumers from package_info(); the project's own would clash.
        rmdir(self, os.path.join(self.package_folder, "lib", "cmake"))
        rmdir(self, os.path.join(self.package_folder, "lib", "pkgconfig"))

    def package_info(self):
        # The same names as the project's own install: mprocConfig.cmake
        # with mproc::mproc, and mproc.pc.
        self.cpp_info.set_property("cmake_file_name", "mproc")
        self.cpp_info.set_property("cmake_target_name", "mproc::mproc")
        self.cpp_info.set_property("pkg_config_name", "mproc")
        self.cpp_info.libs = ["mproc"]
        # No define for consumers: the installed mproc/config.h says
        # whether the library is shared.
        if self.settings.os in ("Linux", "FreeBSD"):
            self.cpp_info.system_libs = ["pthread", "dl", "rt"]
            self.cpp_info.requires = ["openssl::crypto"]
        elif self.settings.os == "Windows":
            self.cpp_info.system_libs = ["bcrypt", "ws2_32"]
