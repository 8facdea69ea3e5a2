// A background I/O thread for plugins whose network work must never run on a proxy worker (the
// rate limiters' Redis client, the loggers' senders): an Asio event loop of its own, started
// on first use and never destroyed (it runs until the process exits).
#pragma once

#include <utility>  // Boost 1.74 asio needs std::exchange

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <exception>
#include <thread>

#include "common/logging.h"

namespace portico::dp::plugins {

// A new event loop running on a detached thread; `component` names it in error logs. Call it
// once per loop (keep the result in a function-local static).
inline boost::asio::io_context& startIoThread(const char* component) {
  namespace asio = boost::asio;
  auto* io = new asio::io_context(1);
  new asio::executor_work_guard<asio::io_context::executor_type>(io->get_executor());
  std::thread([io, component] {
    for (;;) {
      try {
        io->run();
        return;
      } catch (const std::exception& e) {
        LOG_ERROR(component, "I/O thread: %s", e.what());
      }
    }
  }).detach();
  return *io;
}

}  // namespace portico::dp::plugins
