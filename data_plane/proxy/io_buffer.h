// A flat byte buffer with a readable window [begin, end) and a writable tail: one allocation
// per connection, reused for every request on it. Heads must be contiguous for the zero-copy
// parser, so the buffer compacts (memmove) or grows up to a caller-given cap.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string_view>

namespace portico::dp {

class IoBuffer {
 public:
  explicit IoBuffer(size_t capacity) : data_(new char[capacity]), cap_(capacity) {}

  const char* data() const { return data_.get() + begin_; }
  size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  std::string_view view() const { return std::string_view(data(), size()); }

  void consume(size_t n) {
    begin_ += n;
    if (begin_ == end_) {
      begin_ = end_ = 0;
    }
  }
  void clear() { begin_ = end_ = 0; }

  // Makes at least `min_free` writable bytes at the tail, moving the readable bytes to the
  // front or growing (to at most max_capacity). Returns false when that is not possible.
  bool prepare(size_t min_free, size_t max_capacity) {
    if (cap_ - end_ >= min_free) {
      return true;
    }
    const size_t used = size();
    if (cap_ - used >= min_free) {
      std::memmove(data_.get(), data(), used);
    } else {
      size_t want = used + min_free;
      if (want > max_capacity) {
        return false;
      }
      size_t cap = cap_ * 2 > want ? cap_ * 2 : want;
      if (cap > max_capacity) {
        cap = max_capacity;
      }
      std::unique_ptr<char[]> bigger(new char[cap]);
      std::memcpy(bigger.get(), data(), used);
      data_ = std::move(bigger);
      cap_ = cap;
    }
    begin_ = 0;
    end_ = used;
    return true;
  }
  char* tail() { return data_.get() + end_; }
  size_t tailSize() const { return cap_ - end_; }
  void commit(size_t n) { end_ += n; }
  size_t capacity() const { return cap_; }

 private:
  std::unique_ptr<char[]> data_;
  size_t cap_;
  size_t begin_ = 0;
  size_t end_ = 0;
};

}  // namespace portico::dp
