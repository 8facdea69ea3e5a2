// The owner of the product's precompiled header (common/precompiled.h): CMake builds the PCH
// with this target's flags, and every target we own reuses it. Nothing else lives here.
