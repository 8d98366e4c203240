// Running a function on a later turn of the loop, so that callbacks are never synchronous
// with the call that asked for them (CONVENTIONS.md #3).
#pragma once

#include <functional>

typedef struct uv_loop_s uv_loop_t;

namespace kupstream::detail {

// Runs `fn` once on a later loop turn (a zero-delay timer; calls keep their order). The
// caller guards `fn` against its owner being gone (capture a weak_ptr). Loop thread only.
void defer(uv_loop_t& loop, std::function<void()> fn);

}  // namespace kupstream::detail
