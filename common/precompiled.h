// The product's precompiled header (see PORTICO_PCH in the top-level CMakeLists.txt): the
// third-party and standard headers most of our source files include, parsed once per build
// instead of once per file. Only headers we do not own belong here; ours change too often.
// Code must still include what it uses: a build with -DPORTICO_PCH=OFF checks that.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "portico/config/v1/config.pb.h"
#include "portico/sync/v1/sync.pb.h"
