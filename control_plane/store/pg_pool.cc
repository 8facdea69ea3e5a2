#include "control_plane/store/pg_pool.h"

#include <libpq-fe.h>

#include <cctype>
#include <cstdlib>

#include "common/logging.h"

namespace portico::cp {
namespace {

// The first line of a libpq connection error, without the "connection to server ... failed: "
// preamble and severity prefix: "Connection refused" -> "connection refused".
std::string connectionReason(std::string what) {
  what = what.substr(0, what.find('\n'));
  const size_t failed = what.rfind(" failed: ");
  if (failed != std::string::npos) {
    what = what.substr(failed + 9);
  }
  for (const char* prefix : {"FATAL:  ", "ERROR:  "}) {
    if (what.rfind(prefix, 0) == 0) {
      what = what.substr(std::string(prefix).size());
    }
  }
  while (!what.empty() && std::isspace(static_cast<unsigned char>(what.back()))) {
    what.pop_back();
  }
  if (!what.empty()) {
    what[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(what[0])));
  }
  return what.empty() ? "connection failed" : what;
}

}  // namespace

std::string dsnTarget(const std::string& dsn) {
  std::string host, port;
  char* err = nullptr;
  PQconninfoOption* options = PQconninfoParse(dsn.c_str(), &err);
  if (err != nullptr) {
    PQfreemem(err);
  }
  if (options != nullptr) {
    for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
      const std::string key = o->keyword;
      if (o->val == nullptr || *o->val == '\0') {
        continue;
      }
      if (key == "host" || (key == "hostaddr" && host.empty())) {
        host = o->val;
      } else if (key == "port") {
        port = o->val;
      }
    }
    PQconninfoFree(options);
  }
  if (host.empty()) {
    const char* env = std::getenv("PGHOST");
    host = env != nullptr && *env != '\0' ? env : "localhost";
  }
  if (port.empty()) {
    const char* env = std::getenv("PGPORT");
    port = env != nullptr && *env != '\0' ? env : "5432";
  }
  return host + ":" + port;
}

absl::Status statusFromException(const std::exception& e, const std::string& dsn) {
  if (dynamic_cast<const pqxx::broken_connection*>(&e) != nullptr) {
    return absl::UnavailableError("cannot connect to PostgreSQL at " + dsnTarget(dsn) + ": " +
                                  connectionReason(e.what()));
  }
  if (dynamic_cast<const pqxx::in_doubt_error*>(&e) != nullptr) {
    return absl::UnavailableError("lost the PostgreSQL connection while committing");
  }
  if (dynamic_cast<const pqxx::unique_violation*>(&e) != nullptr) {
    const std::string what = e.what();
    return absl::AlreadyExistsError(what.find("_name_unique") != std::string::npos ? "name"
                                                                                   : "id");
  }
  if (dynamic_cast<const pqxx::foreign_key_violation*>(&e) != nullptr) {
    return absl::FailedPreconditionError("foreign key violation");
  }
  if (const auto* sql = dynamic_cast<const pqxx::sql_error*>(&e)) {
    // 40001 serialization failure / 40P01 deadlock: a retry may work.
    if (sql->sqlstate() == "40001" || sql->sqlstate() == "40P01") {
      return absl::AbortedError(sql->what());
    }
    // 57P01 admin shutdown, 08xxx connection exceptions.
    if (sql->sqlstate().rfind("08", 0) == 0 || sql->sqlstate() == "57P01") {
      return absl::UnavailableError("cannot connect to PostgreSQL at " + dsnTarget(dsn) + ": " +
                                    connectionReason(e.what()));
    }
    return absl::InternalError(std::string("database error: ") + sql->what());
  }
  return absl::InternalError(std::string("database error: ") + e.what());
}

PgPool::PgPool(std::string dsn, int size) : dsn_(std::move(dsn)), size_(size < 1 ? 1 : size) {}

PgPool::~PgPool() = default;

std::unique_ptr<pqxx::connection> PgPool::acquire(std::chrono::milliseconds timeout,
                                                  absl::Status* st) {
  {
    absl::MutexLock lock(&mu_);
    auto available = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !idle_.empty() || open_ < size_;
    };
    if (!available()) {
      ++waiting_;
      ++waits_;
      const auto started = std::chrono::steady_clock::now();
      const bool got = mu_.AwaitWithTimeout(absl::Condition(&available),
                                            absl::FromChrono(timeout));
      --waiting_;
      wait_seconds_ +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
      if (!got) {
        ++wait_timeouts_;
        *st = absl::UnavailableError("all PostgreSQL connections are busy");
        return nullptr;
      }
    }
    if (!idle_.empty()) {
      auto conn = std::move(idle_.back());
      idle_.pop_back();
      return conn;
    }
    ++open_;  // reserve the slot; connect outside the lock
  }
  try {
    return std::make_unique<pqxx::connection>(dsn_);
  } catch (const std::exception& e) {
    absl::MutexLock lock(&mu_);
    --open_;
    *st = statusFromException(e, dsn_);
    return nullptr;
  }
}

void PgPool::release(std::unique_ptr<pqxx::connection> conn) {
  absl::MutexLock lock(&mu_);
  if (conn != nullptr && conn->is_open()) {
    idle_.push_back(std::move(conn));
  } else {
    --open_;
  }
}

PgPool::Stats PgPool::stats() const {
  absl::MutexLock lock(&mu_);
  Stats s;
  s.size = size_;
  s.idle = static_cast<int>(idle_.size());
  s.in_use = open_ - s.idle;
  s.waiting = waiting_;
  s.waits = waits_;
  s.wait_timeouts = wait_timeouts_;
  s.wait_seconds = wait_seconds_;
  return s;
}

absl::Status PgPool::run(const std::function<absl::Status(pqxx::connection&)>& fn,
                         std::chrono::milliseconds acquire_timeout) {
  absl::Status st;
  std::unique_ptr<pqxx::connection> conn = acquire(acquire_timeout, &st);
  if (conn == nullptr) {
    return st;
  }
  try {
    st = fn(*conn);
  } catch (const std::exception& e) {
    st = statusFromException(e, dsn_);
    if (absl::IsUnavailable(st)) {
      LOG_WARN("store", "dropping PostgreSQL connection: %s", st.message());
      conn.reset();
    }
  }
  release(std::move(conn));
  return st;
}

}  // namespace portico::cp
