#include "common/config/regex.h"

namespace portico::config {

std::string translateRouteRegex(std::string_view re) {
  std::string out;
  out.reserve(re.size() + 2);
  out.push_back('^');
  for (size_t i = 0; i < re.size(); ++i) {
    if (re.substr(i, 3) == "(?<" && i + 3 < re.size() && re[i + 3] != '=' && re[i + 3] != '!') {
      out += "(?P<";
      i += 2;
    } else {
      out.push_back(re[i]);
    }
  }
  return out;
}

}  // namespace portico::config
