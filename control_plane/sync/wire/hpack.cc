// HPACK (RFC 7541): the decoder is nghttp2's inflater (libnghttp2, the HPACK of curl, nginx
// and Apache), wrapped in our limits; the encoder helpers write literals without indexing.
#include "control_plane/sync/wire/hpack.h"

#include <nghttp2/nghttp2.h>

#include "absl/strings/str_cat.h"

namespace portico::cp::wire {
namespace {

// Per RFC 7541 §4.1 (and RFC 9113 §6.5.2 for the header list), a field costs its name and
// value plus this much.
constexpr uint64_t kEntryOverhead = 32;
// nghttp2's table counts include the 61 static entries.
constexpr size_t kStaticEntries = 61;

void appendString(std::string& out, std::string_view s) {
  hpackAppendInteger(out, s.size(), 7, 0x00);  // H = 0: we never Huffman-encode
  out.append(s);
}

}  // namespace

void HpackDecoder::InflaterDeleter::operator()(nghttp2_hd_inflater* inflater) const {
  nghttp2_hd_inflate_del(inflater);
}

HpackDecoder::HpackDecoder(uint32_t max_table_size) : settings_max_(max_table_size) {}

absl::Status HpackDecoder::ensureInflater() {
  if (inflater_ != nullptr) {
    return absl::OkStatus();
  }
  nghttp2_hd_inflater* raw = nullptr;
  if (nghttp2_hd_inflate_new(&raw) != 0) {
    return absl::ResourceExhaustedError("hpack: cannot allocate the decoder");
  }
  inflater_.reset(raw);
  // The most a dynamic table size update may ask for: what we advertised.
  if (nghttp2_hd_inflate_change_table_size(raw, settings_max_) != 0) {
    return absl::InternalError("hpack: cannot set the table size");
  }
  return absl::OkStatus();
}

absl::Status HpackDecoder::decode(
    std::string_view block,
    const std::function<void(std::string_view name, std::string_view value)>& emit,
    size_t max_header_list_bytes) {
  if (absl::Status st = ensureInflater(); !st.ok()) {
    return st;
  }
  const auto* in = reinterpret_cast<const uint8_t*>(block.data());
  size_t left = block.size();
  uint64_t list_bytes = 0;
  for (;;) {
    nghttp2_nv nv;
    int flags = 0;
    const ssize_t used = nghttp2_hd_inflate_hd2(inflater_.get(), &nv, &flags, in, left, 1);
    if (used < 0) {
      // Malformed (bad integer, index, Huffman code or padding, a size update out of place or
      // above what we advertised, a truncated field): the table is out of step with the peer's.
      return absl::InvalidArgumentError(
          absl::StrCat("hpack: ", nghttp2_strerror(static_cast<int>(used))));
    }
    in += used;
    left -= static_cast<size_t>(used);
    if (flags & NGHTTP2_HD_INFLATE_EMIT) {
      const std::string_view name(reinterpret_cast<const char*>(nv.name), nv.namelen);
      const std::string_view value(reinterpret_cast<const char*>(nv.value), nv.valuelen);
      list_bytes += name.size() + value.size() + kEntryOverhead;
      if (list_bytes > max_header_list_bytes) {
        return absl::ResourceExhaustedError(
            absl::StrCat("hpack: header list exceeds ", max_header_list_bytes, " bytes"));
      }
      emit(name, value);
    }
    if (flags & NGHTTP2_HD_INFLATE_FINAL) {
      nghttp2_hd_inflate_end_headers(inflater_.get());
      return absl::OkStatus();
    }
    if ((flags & NGHTTP2_HD_INFLATE_EMIT) == 0 && left == 0) {
      // in_final with nothing left and no final flag cannot happen; be safe anyway.
      return absl::InvalidArgumentError("hpack: truncated header block");
    }
  }
}

size_t HpackDecoder::tableSize() const {
  return inflater_ == nullptr ? 0 : nghttp2_hd_inflate_get_dynamic_table_size(inflater_.get());
}

size_t HpackDecoder::tableEntries() const {
  if (inflater_ == nullptr) return 0;
  const size_t n = nghttp2_hd_inflate_get_num_table_entries(inflater_.get());
  return n > kStaticEntries ? n - kStaticEntries : 0;
}

void hpackAppendInteger(std::string& out, uint64_t value, int prefix_bits, uint8_t first_byte) {
  const uint64_t max_prefix = (uint64_t{1} << prefix_bits) - 1;
  const auto pattern = static_cast<uint8_t>(first_byte & ~max_prefix);
  if (value < max_prefix) {
    out.push_back(static_cast<char>(pattern | value));
    return;
  }
  out.push_back(static_cast<char>(pattern | max_prefix));
  value -= max_prefix;
  while (value >= 128) {
    out.push_back(static_cast<char>(0x80 | (value & 0x7f)));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

void hpackAppendIndexed(std::string& out, uint32_t index) {
  hpackAppendInteger(out, index, 7, 0x80);
}

void hpackAppendLiteral(std::string& out, std::string_view name, std::string_view value) {
  out.push_back(0x00);  // §6.2.2 without indexing, name index 0 = literal name
  appendString(out, name);
  appendString(out, value);
}

void hpackAppendLiteralIndexedName(std::string& out, uint32_t name_index, std::string_view value) {
  hpackAppendInteger(out, name_index, 4, 0x00);  // §6.2.2 without indexing
  appendString(out, value);
}

}  // namespace portico::cp::wire
