#include "kupstream/version.h"

namespace kupstream {

const char* version() noexcept { return KUPSTREAM_VERSION_STRING; }

}  // namespace kupstream
