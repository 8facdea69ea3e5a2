#include "data_plane/plugins/consumers.h"

#include <string>

namespace portico::dp {
namespace {

template <class Map>
const typename Map::mapped_type* findIn(const Map& map, std::string_view key) {
  auto it = map.find(key);
  return it == map.end() ? nullptr : &it->second;
}

}  // namespace

absl::StatusOr<std::unique_ptr<const ConsumerIndex>> ConsumerIndex::build(
    const config::v1::Snapshot& config, std::shared_ptr<const config::KeyAuthTable> key_auth) {
  auto index = std::unique_ptr<ConsumerIndex>(new ConsumerIndex());
  index->consumers_.reserve(static_cast<size_t>(config.consumers_size()));
  index->by_id_.reserve(static_cast<size_t>(config.consumers_size()));
  for (const config::v1::Consumer& c : config.consumers()) {
    index->consumers_.push_back(Consumer{&c, {}});
  }
  for (const Consumer& c : index->consumers_) {
    index->by_id_.emplace(c.entity->id(), &c);
    if (c.entity->has_username()) {
      index->by_username_.emplace(c.entity->username(), &c);
    }
  }
  // Credentials name their consumer by id; a missing one would let a key authenticate nobody.
  auto owner = [&index](std::string_view kind, std::string_view id,
                        std::string_view consumer_id) -> absl::StatusOr<const Consumer*> {
    const Consumer* c = index->byId(consumer_id);
    if (c == nullptr) {
      return absl::InvalidArgumentError(std::string(kind) + " " + std::string(id) +
                                        ": consumer " + std::string(consumer_id) +
                                        " does not exist");
    }
    return c;
  };
  auto duplicate = [](std::string_view kind, std::string_view id, std::string_view field) {
    return absl::InvalidArgumentError(std::string(kind) + " " + std::string(id) +
                                      ": duplicate " + std::string(field));
  };
  index->key_auth_ = key_auth != nullptr ? std::move(key_auth) : config::KeyAuthTable::empty();
  if (!index->key_auth_->errors().empty()) {
    const config::FieldError& e = index->key_auth_->errors().front();
    return absl::InvalidArgumentError(e.entity_type + " " + e.entity_id + ": " + e.field + ": " +
                                      e.reason);
  }
  for (const auto& b : config.basicauth_credentials()) {
    absl::StatusOr<const Consumer*> c = owner("basicauth_credentials", b.id(), b.consumer().id());
    if (!c.ok()) {
      return c.status();
    }
    if (!index->basic_auth_.emplace(b.username(), BasicAuth{*c, &b}).second) {
      return duplicate("basicauth_credentials", b.id(), "username");
    }
  }
  for (const auto& j : config.jwt_secrets()) {
    absl::StatusOr<const Consumer*> c = owner("jwt_secrets", j.id(), j.consumer().id());
    if (!c.ok()) {
      return c.status();
    }
    if (!index->jwt_.emplace(j.key(), Jwt{*c, &j}).second) {
      return duplicate("jwt_secrets", j.id(), "key");
    }
  }
  for (const auto& h : config.hmacauth_credentials()) {
    absl::StatusOr<const Consumer*> c = owner("hmacauth_credentials", h.id(), h.consumer().id());
    if (!c.ok()) {
      return c.status();
    }
    if (!index->hmac_.emplace(h.username(), Hmac{*c, &h}).second) {
      return duplicate("hmacauth_credentials", h.id(), "username");
    }
  }
  for (const auto& a : config.acls()) {
    absl::StatusOr<const Consumer*> c = owner("acls", a.id(), a.consumer().id());
    if (!c.ok()) {
      return c.status();
    }
    // consumers_ is not resized after this point, so the const_cast target is ours to fill.
    const_cast<Consumer*>(*c)->groups.push_back(a.group());
  }
  return std::unique_ptr<const ConsumerIndex>(std::move(index));
}

const ConsumerIndex& ConsumerIndex::empty() {
  static const auto* const kEmpty = new ConsumerIndex();
  return *kEmpty;
}

const Consumer* ConsumerIndex::byId(std::string_view id) const {
  const Consumer* const* c = findIn(by_id_, id);
  return c == nullptr ? nullptr : *c;
}

const Consumer* ConsumerIndex::byUsername(std::string_view username) const {
  const Consumer* const* c = findIn(by_username_, username);
  return c == nullptr ? nullptr : *c;
}

const Consumer* ConsumerIndex::byIdOrUsername(std::string_view value) const {
  const Consumer* c = byId(value);
  return c != nullptr ? c : byUsername(value);
}

bool ConsumerIndex::keyAuth(std::string_view key, KeyAuth* out) const {
  if (key_auth_ == nullptr) {
    return false;  // the empty() index
  }
  const config::KeyAuthTable::Row* row = key_auth_->find(key);
  if (row == nullptr) {
    return false;
  }
  char consumer_id[36];
  config::formatUuid(row->consumer, consumer_id);
  out->consumer = byId(std::string_view(consumer_id, sizeof(consumer_id)));
  if (out->consumer == nullptr) {
    return false;
  }
  config::formatUuid(row->id, out->credential_id);
  out->expires_at_s =
      row->ttl != config::KeyAuthTable::kNoTtl && row->ttl > 0 ? row->created_at + row->ttl : 0;
  return true;
}
const ConsumerIndex::BasicAuth* ConsumerIndex::basicAuth(std::string_view username) const {
  return findIn(basic_auth_, username);
}
const ConsumerIndex::Jwt* ConsumerIndex::jwt(std::string_view key) const {
  return findIn(jwt_, key);
}
const ConsumerIndex::Hmac* ConsumerIndex::hmac(std::string_view username) const {
  return findIn(hmac_, username);
}

}  // namespace portico::dp
