// portico-cp: the control plane (control_plane/control_plane_main.cc).
#include "control_plane/control_plane_main.h"

int main(int argc, char** argv) { return portico::cp::ControlPlaneMain(argc, argv); }
