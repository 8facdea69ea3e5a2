#include "data_plane/sync_client/snapshot_cache.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <catch2/catch.hpp>

namespace portico::dp {
namespace {

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/portico-cache-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  std::string path;
};

sync::AssembledSnapshot assembled(uint64_t generation) {
  config::v1::Snapshot s;
  s.set_generation(generation);
  s.set_group("default");
  s.add_services()->set_id("svc-1");
  auto e = sync::encodeSnapshot(s);
  REQUIRE(e.ok());
  sync::Reassembler r;
  auto out = r.add((*e)->messages[0].chunk());
  REQUIRE(out.ok());
  REQUIRE(out->has_value());
  return std::move(**out);
}

TEST_CASE("snapshot_cache: save then load round-trips and replaces atomically") {
  TempDir dir;
  const std::string path = dir.path + "/config.cache";
  CHECK(loadSnapshotCache(path).status().code() == absl::StatusCode::kNotFound);
  REQUIRE(saveSnapshotCache(path, assembled(1)).ok());
  REQUIRE(saveSnapshotCache(path, assembled(2)).ok());
  auto loaded = loadSnapshotCache(path);
  REQUIRE(loaded.ok());
  CHECK(loaded->generation == 2);
  CHECK(loaded->snapshot.services(0).id() == "svc-1");
  CHECK(loaded->config_hash == assembled(2).config_hash);
  // No temporary files left behind.
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path)) {
    (void)entry;
    ++files;
  }
  CHECK(files == 1);
}

TEST_CASE("snapshot_cache: a corrupt or truncated file is refused, not trusted") {
  TempDir dir;
  const std::string path = dir.path + "/config.cache";
  REQUIRE(saveSnapshotCache(path, assembled(3)).ok());
  const auto size = std::filesystem::file_size(path);
  SECTION("truncated") { std::filesystem::resize_file(path, size / 2); }
  SECTION("garbage") {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << "not a cache at all";
  }
  SECTION("flipped byte near the end") {
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(size) - 20);
    f.put('\x7f');
  }
  auto loaded = loadSnapshotCache(path);
  CHECK_FALSE(loaded.ok());
}

TEST_CASE("snapshot_cache: unwritable directory is an error, not a crash") {
  auto st = saveSnapshotCache("/nonexistent-dir/portico/config.cache", assembled(1));
  CHECK_FALSE(st.ok());
}

}  // namespace
}  // namespace portico::dp
