#include "common/http/chunked.h"

namespace portico::http {

size_t formatChunkHeader(uint64_t size, char* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  char tmp[16];
  size_t n = 0;
  do {
    tmp[n++] = kHex[size & 0xf];
    size >>= 4;
  } while (size != 0);
  size_t len = 0;
  while (n > 0) {
    out[len++] = tmp[--n];
  }
  out[len++] = '\r';
  out[len++] = '\n';
  return len;
}

}  // namespace portico::http
