#include <doctest/doctest.h>

#include "kupstream/error.h"

using namespace kupstream;

TEST_SUITE("Errc") {
  TEST_CASE("every code has a name and a message from the one table") {
#define CHECK_CODE(id, number, text)                \
  CHECK(make_error_code(Errc::id).value() == number); \
  CHECK(make_error_code(Errc::id).message() == text); \
  CHECK(std::string(errc_name(Errc::id)) == #id);
    KUPSTREAM_ERRC_MAP(CHECK_CODE)
#undef CHECK_CODE
  }

  TEST_CASE("codes compare through std::error_code and the kupstream category") {
    std::error_code ec = Errc::no_endpoint;
    CHECK(ec == Errc::no_endpoint);
    CHECK(ec != Errc::timed_out);
    CHECK(std::string(ec.category().name()) == "kupstream");
    CHECK(errc_name(static_cast<Errc>(999)) == std::string("unknown"));
    CHECK(make_error_code(static_cast<Errc>(999)).message().find("999") != std::string::npos);
  }
}

TEST_SUITE("Result") {
  TEST_CASE("a result holds either the value or the error with its reason") {
    Result<int> good = 7;
    REQUIRE(good.ok());
    CHECK(*good == 7);
    Result<int> bad{Errc::invalid_config, "services[0].port: \"x y\" is bad"};
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().code == Errc::invalid_config);
    CHECK(bad.error().reason == "services[0].port: \"x y\" is bad");
    CHECK(bad.error().message() == "services[0].port: \"x y\" is bad (kupstream:invalid_config)");
  }

  TEST_CASE("a status is ok by default and carries an error otherwise") {
    Status ok;
    CHECK(ok.ok());
    Status failed = Error{Errc::timed_out, "connect to 127.0.1.5:80"};
    CHECK_FALSE(failed);
    CHECK(failed.error().code == Errc::timed_out);
  }
}
