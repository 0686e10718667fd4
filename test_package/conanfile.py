"""Conan 2 test package: `conan create .` builds the recipe at the repo
root, then builds this small consumer against it and runs it."""
import os

from conan import ConanFile
from conan.tools.build import can_run
from conan.tools.cmake import CMake, cmake_layout


class MprocTestConan(ConanFile):
    settings = "os", "arch", "compiler", "build_type"
    generators = "CMakeDeps", "CMakeToolchain"

    def requirements(self):
        self.requires(self.tested_reference_str)

    def layout(self):
        cmake_layout(self)

    def build(self):
        cmake = CMake(self)
        cmake.configure()
        cmake.build()

    def test(self):
        if can_run(self):  # not when cross-building
            exe = os.path.join(self.cpp.build.bindir, "test_package")
            # conanrun puts a shared libmproc on the library search path.
            self.run(exe, env="conanrun")
