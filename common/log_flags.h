// --log_level, which portico-cp and portico-dp share (portico_server_flags; see
// common/CMakeLists.txt for why it is not in portico_common).
#pragma once

#include <string>

#include "absl/flags/declare.h"

ABSL_DECLARE_FLAG(std::string, log_level);
