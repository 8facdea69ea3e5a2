// portico-dp's program as a function of the data-plane library, so that its wiring compiles
// in the library's unity batch (its templates are already instantiated there) and main.cc is
// one line (as Envoy's MainCommon). Its flags are defined in data_plane_main.cc.
#pragma once

namespace portico::dp {

// Parses the flags (and their PORTICO_* environment variables), runs the data plane until
// SIGTERM/SIGINT and returns the process's exit code.
int DataPlaneMain(int argc, char** argv);

}  // namespace portico::dp
