// bot-detection: schema and User-Agent decisions through the real proxy.
#include <catch2/catch.hpp>

#include "tests/unit/data_plane/plugins/common.h"
#include "tests/unit/data_plane/plugins/plugin_fixture.h"

namespace portico::dp {
namespace {

using config::Json;
using testing::PluginFixture;
using testing::WireResponse;

struct BotFixture : PluginFixture {
  explicit BotFixture(Json config = Json::object()) {
    add("plugins", {{"name", "bot-detection"}, {"config", config}});
    REQUIRE(apply().ToString() == "OK");
  }
  int ua(const std::string& agent) { return get("/x", "User-Agent: " + agent + "\r\n").status; }
};

TEST_CASE("bot-detection schema") {
  CHECK(testing::pluginDefaults({{"name", "bot-detection"}})["config"] ==
        Json({{"allow", Json::array()}, {"deny", Json::array()}}));
  CHECK(testing::pluginSchemaError({{"name", "bot-detection"}, {"config", {{"deny", {"(x"}}}}}) ==
        "config.deny.1: not a valid regex: (x");
}

TEST_CASE("bot-detection: built-in list, browsers and tools pass") {
  BotFixture f;
  CHECK(f.get("/x").status == 200);  // no User-Agent
  for (const char* bot :
       {"Googlebot/2.1 (+http://www.google.com/bot.html)", "facebookexternalhit/1.1",
        "Python-urllib/3.11", "Go-http-client/1.1", "Apache-HttpClient/4.5.13", "okhttp/4.9.0",
        "axios/1.6.0", "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "SomeSpider/1.0", "MyCrawler 2.0", "Scrapy/2.11"}) {
    INFO(bot);
    CHECK(f.ua(bot) == 403);
  }
  WireResponse r = f.get("/x", "User-Agent: Googlebot/2.1\r\n");
  CHECK(r.body == R"({"message":"Forbidden"})");
  for (const char* ok : {"curl/7.43.0", "HelloWorld",
                         "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                         "Chrome/120.0 Safari/537.36",
                         "Mozilla/5.0 (Linux; Android 9; CUBOT_X19) Mobile Safari/537.36"}) {
    INFO(ok);
    CHECK(f.ua(ok) == 200);
  }
  r = f.get("/x", "User-Agent: a\r\nUser-Agent: b\r\n");
  CHECK(r.status == 400);
  CHECK(r.body == R"({"message":"Only one User-Agent header allowed"})");
}

TEST_CASE("bot-detection: deny blocks a custom UA, allow rescues a known bot") {
  BotFixture f(Json{{"deny", {"HelloWorld"}}, {"allow", {"facebookexternalhit/1.1"}}});
  CHECK(f.ua("HelloWorld") == 403);
  CHECK(f.ua("facebookexternalhit/1.1") == 200);
  CHECK(f.ua("Googlebot/2.1") == 403);
}

}  // namespace
}  // namespace portico::dp
