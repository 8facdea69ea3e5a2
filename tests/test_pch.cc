// The owner of the tests' precompiled header (tests/CMakeLists.txt): CMake builds the PCH
// with this target's flags, and every test target reuses it. Nothing else lives here.
