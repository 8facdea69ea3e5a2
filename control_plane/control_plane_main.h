// portico-cp's program as a function of the control-plane library, so that its wiring
// compiles in the library's unity batch (its templates are already instantiated there) and
// main.cc is one line (as Envoy's MainCommon). Its flags are defined in control_plane_main.cc.
#pragma once

namespace portico::cp {

// Parses the flags (and their PORTICO_* environment variables), then serves, or runs one of
// the `migrations`, `vitals` or `admins` commands; returns the process's exit code.
int ControlPlaneMain(int argc, char** argv);

}  // namespace portico::cp
