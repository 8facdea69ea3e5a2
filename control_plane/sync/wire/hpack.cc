// HPACK (RFC 7541) decoding and the non-indexing encoder helpers: the static table
// (Appendix A), the Huffman code (Appendix B) compiled into a nibble-driven state machine,
// and the dynamic table of one connection.
#include "control_plane/sync/wire/hpack.h"

#include <algorithm>
#include <array>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace portico::cp::wire {
namespace {

struct StaticEntry {
  std::string_view name;
  std::string_view value;
};

// RFC 7541 Appendix A; HPACK index i is element i - 1.
constexpr std::array<StaticEntry, 61> kStaticTable = {{
    {":authority", ""},                    // 1
    {":method", "GET"},                    // 2
    {":method", "POST"},                   // 3
    {":path", "/"},                        // 4
    {":path", "/index.html"},              // 5
    {":scheme", "http"},                   // 6
    {":scheme", "https"},                  // 7
    {":status", "200"},                    // 8
    {":status", "204"},                    // 9
    {":status", "206"},                    // 10
    {":status", "304"},                    // 11
    {":status", "400"},                    // 12
    {":status", "404"},                    // 13
    {":status", "500"},                    // 14
    {"accept-charset", ""},                // 15
    {"accept-encoding", "gzip, deflate"},  // 16
    {"accept-language", ""},               // 17
    {"accept-ranges", ""},                 // 18
    {"accept", ""},                        // 19
    {"access-control-allow-origin", ""},   // 20
    {"age", ""},                           // 21
    {"allow", ""},                         // 22
    {"authorization", ""},                 // 23
    {"cache-control", ""},                 // 24
    {"content-disposition", ""},           // 25
    {"content-encoding", ""},              // 26
    {"content-language", ""},              // 27
    {"content-length", ""},                // 28
    {"content-location", ""},              // 29
    {"content-range", ""},                 // 30
    {"content-type", ""},                  // 31
    {"cookie", ""},                        // 32
    {"date", ""},                          // 33
    {"etag", ""},                          // 34
    {"expect", ""},                        // 35
    {"expires", ""},                       // 36
    {"from", ""},                          // 37
    {"host", ""},                          // 38
    {"if-match", ""},                      // 39
    {"if-modified-since", ""},             // 40
    {"if-none-match", ""},                 // 41
    {"if-range", ""},                      // 42
    {"if-unmodified-since", ""},           // 43
    {"last-modified", ""},                 // 44
    {"link", ""},                          // 45
    {"location", ""},                      // 46
    {"max-forwards", ""},                  // 47
    {"proxy-authenticate", ""},            // 48
    {"proxy-authorization", ""},           // 49
    {"range", ""},                         // 50
    {"referer", ""},                       // 51
    {"refresh", ""},                       // 52
    {"retry-after", ""},                   // 53
    {"server", ""},                        // 54
    {"set-cookie", ""},                    // 55
    {"strict-transport-security", ""},     // 56
    {"transfer-encoding", ""},             // 57
    {"user-agent", ""},                    // 58
    {"vary", ""},                          // 59
    {"via", ""},                           // 60
    {"www-authenticate", ""},              // 61
}};

struct HuffmanCode {
  uint32_t bits;  // right-aligned code
  uint8_t length;
};

// RFC 7541 Appendix B, indexed by symbol; 256 is EOS. Comments give the first symbol of a row.
constexpr std::array<HuffmanCode, 257> kHuffmanCodes = {{
    {0x1ff8, 13},     {0x7fffd8, 23},   {0xfffffe2, 28},  {0xfffffe3, 28},  // 0
    {0xfffffe4, 28},  {0xfffffe5, 28},  {0xfffffe6, 28},  {0xfffffe7, 28},  // 4
    {0xfffffe8, 28},  {0xffffea, 24},   {0x3ffffffc, 30}, {0xfffffe9, 28},  // 8
    {0xfffffea, 28},  {0x3ffffffd, 30}, {0xfffffeb, 28},  {0xfffffec, 28},  // 12
    {0xfffffed, 28},  {0xfffffee, 28},  {0xfffffef, 28},  {0xffffff0, 28},  // 16
    {0xffffff1, 28},  {0xffffff2, 28},  {0x3ffffffe, 30}, {0xffffff3, 28},  // 20
    {0xffffff4, 28},  {0xffffff5, 28},  {0xffffff6, 28},  {0xffffff7, 28},  // 24
    {0xffffff8, 28},  {0xffffff9, 28},  {0xffffffa, 28},  {0xffffffb, 28},  // 28
    {0x14, 6},        {0x3f8, 10},      {0x3f9, 10},      {0xffa, 12},      // 32
    {0x1ff9, 13},     {0x15, 6},        {0xf8, 8},        {0x7fa, 11},      // 36
    {0x3fa, 10},      {0x3fb, 10},      {0xf9, 8},        {0x7fb, 11},      // 40
    {0xfa, 8},        {0x16, 6},        {0x17, 6},        {0x18, 6},        // 44
    {0x0, 5},         {0x1, 5},         {0x2, 5},         {0x19, 6},        // 48
    {0x1a, 6},        {0x1b, 6},        {0x1c, 6},        {0x1d, 6},        // 52
    {0x1e, 6},        {0x1f, 6},        {0x5c, 7},        {0xfb, 8},        // 56
    {0x7ffc, 15},     {0x20, 6},        {0xffb, 12},      {0x3fc, 10},      // 60
    {0x1ffa, 13},     {0x21, 6},        {0x5d, 7},        {0x5e, 7},        // 64
    {0x5f, 7},        {0x60, 7},        {0x61, 7},        {0x62, 7},        // 68
    {0x63, 7},        {0x64, 7},        {0x65, 7},        {0x66, 7},        // 72
    {0x67, 7},        {0x68, 7},        {0x69, 7},        {0x6a, 7},        // 76
    {0x6b, 7},        {0x6c, 7},        {0x6d, 7},        {0x6e, 7},        // 80
    {0x6f, 7},        {0x70, 7},        {0x71, 7},        {0x72, 7},        // 84
    {0xfc, 8},        {0x73, 7},        {0xfd, 8},        {0x1ffb, 13},     // 88
    {0x7fff0, 19},    {0x1ffc, 13},     {0x3ffc, 14},     {0x22, 6},        // 92
    {0x7ffd, 15},     {0x3, 5},         {0x23, 6},        {0x4, 5},         // 96
    {0x24, 6},        {0x5, 5},         {0x25, 6},        {0x26, 6},        // 100
    {0x27, 6},        {0x6, 5},         {0x74, 7},        {0x75, 7},        // 104
    {0x28, 6},        {0x29, 6},        {0x2a, 6},        {0x7, 5},         // 108
    {0x2b, 6},        {0x76, 7},        {0x2c, 6},        {0x8, 5},         // 112
    {0x9, 5},         {0x2d, 6},        {0x77, 7},        {0x78, 7},        // 116
    {0x79, 7},        {0x7a, 7},        {0x7b, 7},        {0x7ffe, 15},     // 120
    {0x7fc, 11},      {0x3ffd, 14},     {0x1ffd, 13},     {0xffffffc, 28},  // 124
    {0xfffe6, 20},    {0x3fffd2, 22},   {0xfffe7, 20},    {0xfffe8, 20},    // 128
    {0x3fffd3, 22},   {0x3fffd4, 22},   {0x3fffd5, 22},   {0x7fffd9, 23},   // 132
    {0x3fffd6, 22},   {0x7fffda, 23},   {0x7fffdb, 23},   {0x7fffdc, 23},   // 136
    {0x7fffdd, 23},   {0x7fffde, 23},   {0xffffeb, 24},   {0x7fffdf, 23},   // 140
    {0xffffec, 24},   {0xffffed, 24},   {0x3fffd7, 22},   {0x7fffe0, 23},   // 144
    {0xffffee, 24},   {0x7fffe1, 23},   {0x7fffe2, 23},   {0x7fffe3, 23},   // 148
    {0x7fffe4, 23},   {0x1fffdc, 21},   {0x3fffd8, 22},   {0x7fffe5, 23},   // 152
    {0x3fffd9, 22},   {0x7fffe6, 23},   {0x7fffe7, 23},   {0xffffef, 24},   // 156
    {0x3fffda, 22},   {0x1fffdd, 21},   {0xfffe9, 20},    {0x3fffdb, 22},   // 160
    {0x3fffdc, 22},   {0x7fffe8, 23},   {0x7fffe9, 23},   {0x1fffde, 21},   // 164
    {0x7fffea, 23},   {0x3fffdd, 22},   {0x3fffde, 22},   {0xfffff0, 24},   // 168
    {0x1fffdf, 21},   {0x3fffdf, 22},   {0x7fffeb, 23},   {0x7fffec, 23},   // 172
    {0x1fffe0, 21},   {0x1fffe1, 21},   {0x3fffe0, 22},   {0x1fffe2, 21},   // 176
    {0x7fffed, 23},   {0x3fffe1, 22},   {0x7fffee, 23},   {0x7fffef, 23},   // 180
    {0xfffea, 20},    {0x3fffe2, 22},   {0x3fffe3, 22},   {0x3fffe4, 22},   // 184
    {0x7ffff0, 23},   {0x3fffe5, 22},   {0x3fffe6, 22},   {0x7ffff1, 23},   // 188
    {0x3ffffe0, 26},  {0x3ffffe1, 26},  {0xfffeb, 20},    {0x7fff1, 19},    // 192
    {0x3fffe7, 22},   {0x7ffff2, 23},   {0x3fffe8, 22},   {0x1ffffec, 25},  // 196
    {0x3ffffe2, 26},  {0x3ffffe3, 26},  {0x3ffffe4, 26},  {0x7ffffde, 27},  // 200
    {0x7ffffdf, 27},  {0x3ffffe5, 26},  {0xfffff1, 24},   {0x1ffffed, 25},  // 204
    {0x7fff2, 19},    {0x1fffe3, 21},   {0x3ffffe6, 26},  {0x7ffffe0, 27},  // 208
    {0x7ffffe1, 27},  {0x3ffffe7, 26},  {0x7ffffe2, 27},  {0xfffff2, 24},   // 212
    {0x1fffe4, 21},   {0x1fffe5, 21},   {0x3ffffe8, 26},  {0x3ffffe9, 26},  // 216
    {0xffffffd, 28},  {0x7ffffe3, 27},  {0x7ffffe4, 27},  {0x7ffffe5, 27},  // 220
    {0xfffec, 20},    {0xfffff3, 24},   {0xfffed, 20},    {0x1fffe6, 21},   // 224
    {0x3fffe9, 22},   {0x1fffe7, 21},   {0x1fffe8, 21},   {0x7ffff3, 23},   // 228
    {0x3fffea, 22},   {0x3fffeb, 22},   {0x1ffffee, 25},  {0x1ffffef, 25},  // 232
    {0xfffff4, 24},   {0xfffff5, 24},   {0x3ffffea, 26},  {0x7ffff4, 23},   // 236
    {0x3ffffeb, 26},  {0x7ffffe6, 27},  {0x3ffffec, 26},  {0x3ffffed, 26},  // 240
    {0x7ffffe7, 27},  {0x7ffffe8, 27},  {0x7ffffe9, 27},  {0x7ffffea, 27},  // 244
    {0x7ffffeb, 27},  {0xffffffe, 28},  {0x7ffffec, 27},  {0x7ffffed, 27},  // 248
    {0x7ffffee, 27},  {0x7ffffef, 27},  {0x7fffff0, 27},  {0x3ffffee, 26},  // 252
    {0x3fffffff, 30},                                                       // 256
}};

constexpr int kEos = 256;
// Per RFC 7541 §4.1, an entry costs its name and value plus this much.
constexpr uint64_t kEntryOverhead = 32;
// Integers we accept: nothing in HPACK legitimately needs more (lengths, indexes and table
// sizes are all bounded by 32-bit settings), and 5 continuation bytes already reach it.
constexpr uint64_t kMaxInteger = UINT32_MAX;
constexpr int kMaxIntegerShift = 28;

// The Huffman decoder consumes 4 bits at a time. A state is an internal node of the code
// tree (256 of them for 257 leaves, so it fits in a byte); since the shortest code has 5
// bits, a nibble completes at most one symbol.
enum HuffmanStepFlags : uint8_t {
  kEmit = 1,    // `symbol` was completed by this nibble
  kFail = 2,    // the nibble completes EOS, which may not appear in a string
  kAccept = 4,  // ending the string in `next` is valid: the pending bits are at most 7 ones
};

struct HuffmanStep {
  uint8_t next;
  uint8_t symbol;
  uint8_t flags;
};

struct HuffmanDecodeTable {
  HuffmanStep steps[256][16];
};

const HuffmanDecodeTable* buildHuffmanDecodeTable() {
  constexpr int kNone = -1;
  constexpr int kLeaf = 256;  // child values >= kLeaf are leaves for symbol (value - kLeaf)
  struct Node {
    int child[2] = {kNone, kNone};
    int depth = 0;
    bool all_ones = true;  // the path from the root is all 1 bits, i.e. could be padding
  };
  std::vector<Node> nodes(1);
  for (int symbol = 0; symbol <= kEos; ++symbol) {
    const HuffmanCode code = kHuffmanCodes[symbol];
    int cur = 0;
    for (int i = code.length - 1; i > 0; --i) {
      const int bit = (code.bits >> i) & 1;
      if (nodes[cur].child[bit] == kNone) {
        Node node;
        node.depth = nodes[cur].depth + 1;
        node.all_ones = nodes[cur].all_ones && bit == 1;
        nodes[cur].child[bit] = static_cast<int>(nodes.size());
        nodes.push_back(node);
      }
      cur = nodes[cur].child[bit];
    }
    nodes[cur].child[code.bits & 1] = kLeaf + symbol;
  }

  auto* table = new HuffmanDecodeTable{};
  for (size_t state = 0; state < nodes.size(); ++state) {
    for (int nibble = 0; nibble < 16; ++nibble) {
      HuffmanStep step{0, 0, 0};
      int cur = static_cast<int>(state);
      for (int i = 3; i >= 0; --i) {
        const int child = nodes[cur].child[(nibble >> i) & 1];
        // kNone cannot happen with a complete code; treating it as an error keeps a damaged
        // table from indexing out of bounds.
        if (child == kNone || child == kLeaf + kEos) {
          step.flags = kFail;
          break;
        }
        if (child >= kLeaf) {
          step.flags |= kEmit;
          step.symbol = static_cast<uint8_t>(child - kLeaf);
          cur = 0;
        } else {
          cur = child;
        }
      }
      if (!(step.flags & kFail) && nodes[cur].all_ones && nodes[cur].depth <= 7) {
        step.flags |= kAccept;
      }
      step.next = static_cast<uint8_t>(cur);
      table->steps[state][nibble] = step;
    }
  }
  return table;
}

const HuffmanDecodeTable& huffmanDecodeTable() {
  static const HuffmanDecodeTable* const kTable = buildHuffmanDecodeTable();
  return *kTable;
}

// Appends the decoding of `in` to `out`.
absl::Status huffmanDecode(std::string_view in, std::string& out) {
  const HuffmanDecodeTable& table = huffmanDecodeTable();
  out.reserve(out.size() + in.size() * 8 / 5);  // the shortest code has 5 bits
  uint8_t state = 0;
  bool accept = true;
  for (const char c : in) {
    const auto byte = static_cast<uint8_t>(c);
    for (const int nibble : {byte >> 4, byte & 15}) {
      const HuffmanStep step = table.steps[state][nibble];
      if (step.flags & kFail) {
        return absl::InvalidArgumentError("hpack: Huffman string contains EOS");
      }
      if (step.flags & kEmit) {
        out.push_back(static_cast<char>(step.symbol));
      }
      state = step.next;
      accept = (step.flags & kAccept) != 0;
    }
  }
  if (!accept) {
    return absl::InvalidArgumentError(
        "hpack: Huffman padding is longer than 7 bits or not all ones");
  }
  return absl::OkStatus();
}

// Reads the primitives of RFC 7541 §5 from a header block; never reads past its end.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  bool done() const { return pos_ == in_.size(); }
  uint8_t peek() const { return static_cast<uint8_t>(in_[pos_]); }

  // §5.1. The caller has checked !done().
  absl::Status readInteger(int prefix_bits, uint64_t& value) {
    const uint8_t max_prefix = static_cast<uint8_t>((1u << prefix_bits) - 1);
    value = static_cast<uint8_t>(in_[pos_++]) & max_prefix;
    if (value < max_prefix) {
      return absl::OkStatus();
    }
    for (int shift = 0;; shift += 7) {
      if (shift > kMaxIntegerShift) {
        return absl::InvalidArgumentError("hpack: integer has too many continuation bytes");
      }
      if (done()) {
        return absl::InvalidArgumentError("hpack: truncated integer");
      }
      const auto byte = static_cast<uint8_t>(in_[pos_++]);
      value += static_cast<uint64_t>(byte & 0x7f) << shift;
      if (value > kMaxInteger) {
        return absl::InvalidArgumentError("hpack: integer overflow");
      }
      if (!(byte & 0x80)) {
        return absl::OkStatus();
      }
    }
  }

  // §5.2. A raw string is returned as a view into the block; a Huffman string is decoded into
  // `scratch` (cleared first) and returned as a view of it.
  absl::Status readString(std::string& scratch, std::string_view& out) {
    if (done()) {
      return absl::InvalidArgumentError("hpack: truncated string literal");
    }
    const bool huffman = (peek() & 0x80) != 0;
    uint64_t length = 0;
    RETURN_IF_ERROR(readInteger(7, length));
    if (length > in_.size() - pos_) {
      return absl::InvalidArgumentError(absl::StrCat("hpack: string length ", length,
                                                     " exceeds the ", in_.size() - pos_,
                                                     " bytes left in the block"));
    }
    const std::string_view raw = in_.substr(pos_, length);
    pos_ += length;
    if (!huffman) {
      out = raw;
      return absl::OkStatus();
    }
    scratch.clear();
    RETURN_IF_ERROR(huffmanDecode(raw, scratch));
    out = scratch;
    return absl::OkStatus();
  }

 private:
  std::string_view in_;
  size_t pos_ = 0;
};

void appendString(std::string& out, std::string_view s) {
  hpackAppendInteger(out, s.size(), 7, 0x00);  // H = 0: we never Huffman-encode
  out.append(s);
}

}  // namespace

HpackDecoder::HpackDecoder(uint32_t max_table_size)
    : max_size_(max_table_size), settings_max_(max_table_size) {}

absl::Status HpackDecoder::decode(
    std::string_view block,
    const std::function<void(std::string_view name, std::string_view value)>& emit,
    size_t max_header_list_bytes) {
  Reader in(block);
  // Huffman-decoded strings live here; local so an idle connection holds no such buffers.
  std::string name_scratch;
  std::string value_scratch;
  uint64_t list_bytes = 0;
  bool field_seen = false;
  while (!in.done()) {
    const uint8_t first = in.peek();
    if ((first & 0xe0) == 0x20) {  // §6.3 dynamic table size update: 001xxxxx
      // §4.2: updates are only allowed before the first field of a block.
      if (field_seen) {
        return absl::InvalidArgumentError("hpack: dynamic table size update after a header field");
      }
      uint64_t new_size = 0;
      RETURN_IF_ERROR(in.readInteger(5, new_size));
      if (new_size > settings_max_) {
        return absl::InvalidArgumentError(absl::StrCat("hpack: dynamic table size update to ",
                                                       new_size, " above the advertised ",
                                                       settings_max_));
      }
      max_size_ = static_cast<uint32_t>(new_size);
      if (max_size_ == 0) {
        clearTable();  // the peer asked for no table: give the memory back
      } else {
        evictTo(max_size_);
      }
      continue;
    }
    field_seen = true;

    std::string_view name;
    std::string_view value;
    bool add_to_table = false;
    if (first & 0x80) {  // §6.1 indexed header field: 1xxxxxxx
      uint64_t index = 0;
      RETURN_IF_ERROR(in.readInteger(7, index));
      RETURN_IF_ERROR(lookup(index, name, value));
    } else {
      // §6.2.1 with incremental indexing: 01xxxxxx; §6.2.2 without indexing: 0000xxxx;
      // §6.2.3 never indexed: 0001xxxx. The last two differ only for intermediaries that
      // re-encode, which we are not.
      add_to_table = (first & 0x40) != 0;
      uint64_t name_index = 0;
      RETURN_IF_ERROR(in.readInteger(add_to_table ? 6 : 4, name_index));
      if (name_index == 0) {
        RETURN_IF_ERROR(in.readString(name_scratch, name));
      } else {
        std::string_view unused;
        RETURN_IF_ERROR(lookup(name_index, name, unused));
      }
      RETURN_IF_ERROR(in.readString(value_scratch, value));
    }

    list_bytes += name.size() + value.size() + kEntryOverhead;
    if (list_bytes > max_header_list_bytes) {
      return absl::ResourceExhaustedError(
          absl::StrCat("hpack: header list exceeds ", max_header_list_bytes, " bytes"));
    }
    emit(name, value);
    if (add_to_table) {
      insert(name, value);
    }
  }
  return absl::OkStatus();
}

absl::Status HpackDecoder::lookup(uint64_t index, std::string_view& name,
                                  std::string_view& value) const {
  if (index == 0) {
    return absl::InvalidArgumentError("hpack: index 0");
  }
  if (index <= kStaticTable.size()) {
    name = kStaticTable[index - 1].name;
    value = kStaticTable[index - 1].value;
    return absl::OkStatus();
  }
  const uint64_t dynamic = index - kStaticTable.size() - 1;  // 0 = newest
  if (dynamic >= entries_.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "hpack: index ", index, " out of range (dynamic table has ", entries_.size(), " entries)"));
  }
  const Entry& e = entries_[entries_.size() - 1 - dynamic];
  name = std::string_view(data_.data() + e.offset, e.name_len);
  value = std::string_view(data_.data() + e.offset + e.name_len, e.value_len);
  return absl::OkStatus();
}

void HpackDecoder::insert(std::string_view name, std::string_view value) {
  const uint64_t entry_size = name.size() + value.size() + kEntryOverhead;
  if (entry_size > max_size_) {
    clearTable();  // §4.4: an entry larger than the table empties it and is not added
    return;
  }
  // The name may be a dynamic table entry's (§4.4 warns it may even be evicted by this very
  // insertion), and compacting data_ below moves bytes: take a copy first.
  std::string name_copy;
  if (std::greater_equal<const char*>()(name.data(), data_.data()) &&
      std::less<const char*>()(name.data(), data_.data() + data_.size())) {
    name_copy.assign(name);
    name = name_copy;
  }
  evictTo(max_size_ - static_cast<uint32_t>(entry_size));

  // Drop the evicted prefix rather than grow the buffer, and grow at most to max_size_: the
  // live bytes plus the new entry never exceed it, so neither does the capacity.
  const size_t needed = name.size() + value.size();
  if (data_.size() + needed > data_.capacity()) {
    const size_t dead = entries_.empty() ? data_.size() : entries_.front().offset;
    if (dead > 0) {
      data_.erase(0, dead);
      for (Entry& e : entries_) {
        e.offset -= static_cast<uint32_t>(dead);
      }
    }
    if (data_.size() + needed > data_.capacity()) {
      data_.reserve(
          std::min<size_t>(std::max(data_.size() + needed, 2 * data_.capacity()), max_size_));
    }
  }
  entries_.push_back(Entry{static_cast<uint32_t>(data_.size()), static_cast<uint32_t>(name.size()),
                           static_cast<uint32_t>(value.size())});
  data_.append(name);
  data_.append(value);
  size_ += static_cast<uint32_t>(entry_size);
}

void HpackDecoder::evictTo(uint32_t limit) {
  size_t evicted = 0;
  while (size_ > limit) {
    const Entry& e = entries_[evicted++];
    size_ -= static_cast<uint32_t>(e.name_len + e.value_len + kEntryOverhead);
  }
  entries_.erase(entries_.begin(), entries_.begin() + static_cast<ptrdiff_t>(evicted));
  if (entries_.empty()) {
    data_.clear();  // keeps the capacity for the next insertion
  }
}

void HpackDecoder::clearTable() {
  std::string().swap(data_);
  std::vector<Entry>().swap(entries_);
  size_ = 0;
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
