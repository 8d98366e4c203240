// kupstream_c.h compiles as C++ (with -Wall -Wextra -pedantic -Werror) and its declarations
// have C linkage: taking their addresses through C function-pointer types checks both.
#include "kupstream/kupstream_c.h"

#include <type_traits>

extern "C" {
typedef int (*kup_create_fn)(uv_loop_t*, const kup_cluster_options*, kup_cluster**, kup_error*);
}
static_assert(std::is_same_v<decltype(&kup_cluster_create), kup_create_fn>);
static_assert(std::is_trivially_copyable_v<kup_pick_result> && std::is_standard_layout_v<kup_request>);
static_assert(KUP_VERSION_NUMBER == ((KUP_VERSION_MAJOR << 16) | (KUP_VERSION_MINOR << 8) | KUP_VERSION_PATCH));

int kup_header_cxx_compiles() { return KUP_OK; }
