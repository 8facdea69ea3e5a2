// The vitals endpoints of the Admin API (also under /control-planes/{id}/):
//   GET /vitals/requests?start=&end=&granularity=10s|1m|1h&group_by=...&service=&route=
//       &consumer=&node=   buckets with traffic, summed over what is not grouped by;
//   GET /vitals/summary    totals per service over the last hour.
// Bad parameters get Kong's schema-violation JSON (400) naming the field.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "control_plane/admin_api/body_stream.h"
#include "control_plane/store/pg_pool.h"

namespace portico::cp::vitals {

struct ApiAnswer {
  int status = 200;
  std::string body;  // JSON
  BodyStream stream;  // set: the body comes from it instead (large answers)
};

// `segments`: the path after any /control-planes/{id} prefix, starting with "vitals".
// Blocks on PostgreSQL: call it on a DB worker thread.
ApiAnswer handleApi(PgPool& pool, const std::string& method, const std::string& group,
                    const std::vector<std::string>& segments,
                    const std::map<std::string, std::string>& query, int64_t now_s);

}  // namespace portico::cp::vitals
