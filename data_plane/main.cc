// portico-dp: the data plane (data_plane/data_plane_main.cc).
#include "data_plane/data_plane_main.h"

int main(int argc, char** argv) { return portico::dp::DataPlaneMain(argc, argv); }
