#include "core/defer.h"

#include <uv.h>

namespace kupstream::detail {

void defer(uv_loop_t& loop, std::function<void()> fn) {
  struct Deferred {
    uv_timer_t timer;
    std::function<void()> fn;
  };
  auto* d = new Deferred{{}, std::move(fn)};
  uv_timer_init(&loop, &d->timer);
  d->timer.data = d;
  uv_timer_start(&d->timer, [](uv_timer_t* t) {
    auto* self = static_cast<Deferred*>(t->data);
    auto run = std::move(self->fn);
    uv_close(reinterpret_cast<uv_handle_t*>(t), [](uv_handle_t* h) { delete static_cast<Deferred*>(h->data); });
    run();
  }, 0, 0);
}

}  // namespace kupstream::detail
