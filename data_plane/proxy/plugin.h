// Plugin phase interface (STYLE rules 1-3), the shape later plugins (auth, rate limiting,
// prometheus, loggers) implement. A PluginConfig is built once per snapshot and is immutable;
// it creates one cheap Plugin per request. Not wired into Session yet: the session will run
// onRequest() after routing, onUpstreamRequest() before the upstream head is written,
// onResponseHeaders() before the client head is written, and onLog() for every request.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

namespace portico::dp {

class Snapshot;

enum class PhaseResult : uint8_t { kContinue, kStop };  // kStop: the plugin already replied

// The request as plugins see it. Implemented by the session; lives for one request, on the
// worker that owns the connection. Views returned stay valid until the phase returns.
class RequestContext {
 public:
  virtual ~RequestContext() = default;
  // The snapshot the request started with (the same one in every phase).
  virtual const Snapshot& snapshot() const = 0;
  virtual std::string_view method() const = 0;
  virtual std::string_view path() const = 0;
  virtual bool requestHeader(std::string_view name, std::string_view* value) const = 0;
  virtual void setUpstreamHeader(std::string_view name, std::string_view value) = 0;
  virtual void setResponseHeader(std::string_view name, std::string_view value) = 0;
  // The one way a plugin answers the client itself (Kong's kong.response.error).
  virtual void sendLocalReply(int status, std::string_view message) = 0;
  virtual int responseStatus() const = 0;  // 0 until a response exists
};

class Plugin {
 public:
  virtual ~Plugin() = default;
  // Kong's access phase: after routing, before the upstream is chosen.
  virtual PhaseResult onRequest(RequestContext&) { return PhaseResult::kContinue; }
  // After every onRequest() returned kContinue, before the upstream request head is sent.
  virtual PhaseResult onUpstreamRequest(RequestContext&) { return PhaseResult::kContinue; }
  // Before the client response head is sent (upstream or local reply).
  virtual void onResponseHeaders(RequestContext&) {}
  // Always runs, also after kStop, errors and client aborts. Metrics and logs go here.
  virtual void onLog(const RequestContext&) {}
};
using PluginPtr = std::unique_ptr<Plugin>;

// Built once per snapshot from a validated plugin entity; shared by every request.
class PluginConfig {
 public:
  virtual ~PluginConfig() = default;
  virtual std::string_view name() const = 0;
  virtual int32_t priority() const = 0;  // Kong's order: higher runs first; ties by name
  virtual PluginPtr createPlugin() const = 0;
};
using PluginConfigConstSharedPtr = std::shared_ptr<const PluginConfig>;

}  // namespace portico::dp
