#include "kupstream/shared_name.h"

#include <memory>

namespace kupstream {

SharedName::SharedName(std::string_view text) {
  if (text.empty()) return;
  auto block = std::make_unique<Block>();
  block->text.assign(text);
  block_ = block.release();
}

}  // namespace kupstream
