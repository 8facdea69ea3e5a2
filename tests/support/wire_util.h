// The few HTTP/1.1 wire helpers the test client (test_support.cc) and the echo upstream
// (echo_upstream.cc) share. Internal to tests/support.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace portico::testing {

std::string lower(std::string s);
// Sends all of `data` (MSG_NOSIGNAL); false if the peer went away.
bool writeAll(int fd, const std::string& data);
// Decodes a chunked body; returns false on malformed input.
bool dechunk(const std::string& in, std::string* out);
// One head line "Name: value" (a trailing \r dropped) as the lower-cased name and the value
// without its leading blanks; nullopt for a line without a colon.
std::optional<std::pair<std::string, std::string>> headerField(std::string line);

}  // namespace portico::testing
