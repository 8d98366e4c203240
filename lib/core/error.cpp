#include "kupstream/error.h"

namespace kupstream {
namespace {

class KupstreamCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "kupstream"; }
  std::string message(int value) const override {
    switch (static_cast<Errc>(value)) {
#define KUPSTREAM_ERRC_MESSAGE(name, value, text) \
  case Errc::name:                                \
    return text;
      KUPSTREAM_ERRC_MAP(KUPSTREAM_ERRC_MESSAGE)
#undef KUPSTREAM_ERRC_MESSAGE
    }
    return "unknown kupstream error " + std::to_string(value);
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const KupstreamCategory category;
  return category;
}

const char* errc_name(Errc e) noexcept {
  switch (e) {
#define KUPSTREAM_ERRC_NAME(name, value, text) \
  case Errc::name:                             \
    return #name;
    KUPSTREAM_ERRC_MAP(KUPSTREAM_ERRC_NAME)
#undef KUPSTREAM_ERRC_NAME
  }
  return "unknown";
}

std::string Error::message() const {
  if (!code) return reason;
  std::string out = reason.empty() ? code.message() : reason;
  out += " (";
  out += code.category().name();
  out += ':';
  out += code.category() == error_category() ? errc_name(static_cast<Errc>(code.value()))
                                              : std::to_string(code.value());
  out += ')';
  return out;
}

}  // namespace kupstream
