// Binary COPY ... FROM STDIN under a libpqxx transaction (libpqxx 6.4 writes text COPY only):
// fields in PostgreSQL's binary format, so neither side formats or parses numbers as text and
// strings need no escaping. Internal to control_plane/ (vitals batches, POST /config's
// staging); throws std::runtime_error, which the callers' PgPool::run turns into a Status.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

#include <libpq-fe.h>
#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"

namespace portico::cp::detail {

// libpq's connection under a pqxx transaction, for COPY in binary (pqxx 6.4 writes text only).
// pqxx hands it out to its large-object class only.
struct RawConnection : pqxx::largeobject {
  static PGconn* of(const pqxx::dbtransaction& txn) { return raw_connection(txn); }
};

// COPY ... FROM STDIN (FORMAT binary): fields in network byte order (text COPY with array
// literals was ~a third of the vitals writer's time and most of PostgreSQL's). Sent in slices
// of ~1 MB.
class BinaryCopy {
 public:
  BinaryCopy(pqxx::dbtransaction& txn, const std::string& table) : conn_(RawConnection::of(txn)) {
    PGresult* r =
        PQexec(conn_, absl::StrCat("COPY ", table, " FROM STDIN (FORMAT binary)").c_str());
    const bool ok = PQresultStatus(r) == PGRES_COPY_IN;
    PQclear(r);
    if (!ok) throw std::runtime_error(absl::StrCat("COPY ", table, ": ", PQerrorMessage(conn_)));
    buf_.reserve(kSlice + 4096);
    buf_.append("PGCOPY\n\377\r\n\0", 11);
    put32(0);  // flags
    put32(0);  // header extension length
  }
  ~BinaryCopy() {
    if (!done_) {  // an exception on the way: leave the connection out of COPY
      PQputCopyEnd(conn_, "aborted");
      while (PGresult* r = PQgetResult(conn_)) PQclear(r);
    }
  }
  void row(int16_t fields) {
    if (buf_.size() >= kSlice) flush();
    put16(static_cast<uint16_t>(fields));
  }
  void i16(int v) { put32(2); put16(static_cast<uint16_t>(v)); }
  void i32(int32_t v) { put32(4); put32(static_cast<uint32_t>(v)); }
  void i64(int64_t v) { put32(8); put64(static_cast<uint64_t>(v)); }
  void boolean(bool v) {
    put32(1);
    buf_.push_back(v ? 1 : 0);
  }
  // jsonb's binary form: a version byte (1), then the JSON text.
  void jsonb(std::string_view v) {
    put32(static_cast<uint32_t>(v.size() + 1));
    buf_.push_back(1);
    buf_.append(v);
  }
  void text(std::string_view v) {
    put32(static_cast<uint32_t>(v.size()));
    buf_.append(v);
  }
  void complete() {
    put16(0xffff);  // trailer
    flush();
    done_ = true;
    if (PQputCopyEnd(conn_, nullptr) != 1) fail();
    bool ok = true;
    while (PGresult* r = PQgetResult(conn_)) {
      ok = ok && PQresultStatus(r) == PGRES_COMMAND_OK;
      PQclear(r);
    }
    if (!ok) fail();
  }

 private:
  static constexpr size_t kSlice = 1 << 20;
  [[noreturn]] void fail() { throw std::runtime_error(absl::StrCat("COPY: ", PQerrorMessage(conn_))); }
  void flush() {
    if (!buf_.empty() && PQputCopyData(conn_, buf_.data(), static_cast<int>(buf_.size())) != 1) {
      fail();
    }
    buf_.clear();
  }
  void put16(uint16_t v) {
    const char b[2] = {static_cast<char>(v >> 8), static_cast<char>(v)};
    buf_.append(b, 2);
  }
  void put32(uint32_t v) {
    const uint32_t be = __builtin_bswap32(v);
    buf_.append(reinterpret_cast<const char*>(&be), 4);
  }
  void put64(uint64_t v) {
    const uint64_t be = __builtin_bswap64(v);
    buf_.append(reinterpret_cast<const char*>(&be), 8);
  }

  PGconn* conn_;
  std::string buf_;
  bool done_ = false;
};

}  // namespace portico::cp::detail
