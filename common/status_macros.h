// Abseil 20220623 has no ABSL_RETURN_IF_ERROR / ABSL_ASSIGN_OR_RETURN; these two macros
// have the same meaning so we can switch to Abseil's once Debian ships them.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define PORTICO_STATUS_CONCAT_INNER_(a, b) a##b
#define PORTICO_STATUS_CONCAT_(a, b) PORTICO_STATUS_CONCAT_INNER_(a, b)

// Returns the status from the enclosing function if `expr` is not OK.
#define RETURN_IF_ERROR(expr)                 \
  do {                                        \
    const absl::Status _st = (expr);          \
    if (!_st.ok()) {                          \
      return _st;                             \
    }                                         \
  } while (0)

// `lhs = value of expr`, or returns its status from the enclosing function.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(PORTICO_STATUS_CONCAT_(_status_or_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) {                             \
    return tmp.status();                       \
  }                                            \
  lhs = std::move(tmp).value()
