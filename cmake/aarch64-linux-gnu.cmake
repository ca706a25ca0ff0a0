# Cross-compiling onebit for 64-bit ARM Linux (Raspberry Pi 4/5, Graviton, ...)
# with Debian's cross toolchain:
#
#   apt-get install g++-aarch64-linux-gnu qemu-user
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#         -DONEBIT_PYTHON=OFF -DONEBIT_BUILD_TESTS=ON
#   cmake --build build/aarch64 -j2
#   qemu-aarch64 -L /usr/aarch64-linux-gnu build/aarch64/csrc/onebit-run model.onebit
#
# (scripts/test-aarch64 does all of this and tests the result.) Another
# toolchain prefix: -DONEBIT_CROSS_PREFIX=aarch64-none-linux-gnu-.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(ONEBIT_CROSS_PREFIX "aarch64-linux-gnu-" CACHE STRING "Prefix of the cross compiler's tools")
set(CMAKE_C_COMPILER ${ONEBIT_CROSS_PREFIX}gcc)
set(CMAKE_CXX_COMPILER ${ONEBIT_CROSS_PREFIX}g++)
set(CMAKE_STRIP ${ONEBIT_CROSS_PREFIX}strip CACHE FILEPATH "")

# Debian's multiarch sysroot for the target's headers and libraries.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Lets CMake run target programs (try_run, tests) through the emulator.
find_program(ONEBIT_QEMU_AARCH64 qemu-aarch64)
if(ONEBIT_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${ONEBIT_QEMU_AARCH64} -L /usr/aarch64-linux-gnu)
endif()
