// The private-range IP literals here are values to parse and compare: addresses are data only (nothing connects to them).
#include "kube/decoder.h"

#include <doctest/doctest.h>

#include "fixture.h"

using namespace kupstream;
using namespace kupstream::kube;
using kube_test::fixture;
using kube_test::fixture_lines;

TEST_SUITE("Decoder") {
  TEST_CASE("a real watch stream decodes into ADDED, MODIFIED, MODIFIED, DELETED and a BOOKMARK") {
    Decoder d;
    auto lines = fixture_lines("watch-endpointslices.jsonl");
    REQUIRE(lines.size() == 5);
    std::vector<WatchEvent<EndpointSlice>> evs;
    for (auto& l : lines) {
      auto r = d.decode_event<EndpointSlice>(l);
      REQUIRE_MESSAGE(r.ok(), r.error().reason);
      evs.push_back(std::move(*r));
    }
    CHECK(evs[0].type == EventType::added);
    CHECK(evs[1].type == EventType::modified);
    CHECK(evs[2].type == EventType::modified);
    CHECK(evs[3].type == EventType::deleted);
    CHECK(evs[4].type == EventType::bookmark);

    const EndpointSlice& s = evs[0].object;
    CHECK(s.metadata.name == "web-2");
    CHECK(s.metadata.namespace_ == "demo");
    CHECK(s.metadata.uid == "5eb8257a-455d-4bcb-98f8-4c6c6f65917b");
    CHECK(s.metadata.resource_version == "225");
    CHECK(evs[0].resource_version == "225");
    CHECK(s.service_name() == "web");
    CHECK(s.metadata.label("endpointslice.kubernetes.io/managed-by") == "capture-script");
    CHECK(s.address_type == AddressType::ipv4);
    REQUIRE(s.endpoints.size() == 1);
    CHECK(s.endpoints[0].addresses == AddressList{"10.1.0.2"});
    CHECK(s.endpoints[0].conditions.ready == std::optional<bool>(false));
    CHECK_FALSE(s.endpoints[0].conditions.serving.has_value());
    CHECK(s.endpoints[0].conditions.serving_or_default());
    CHECK(s.endpoints[0].node_name == "node-a");
    REQUIRE(s.ports.size() == 1);
    CHECK(s.ports[0].name == "http");
    CHECK(s.ports[0].port == std::optional<std::int32_t>(8080));
    CHECK(s.ports[0].protocol == "TCP");

    CHECK(evs[1].object.endpoints[0].conditions.ready == std::optional<bool>(true));
    CHECK(evs[2].object.metadata.label("capture/touched") == "yes");
    CHECK(evs[3].object.metadata.resource_version == "229");

    // BOOKMARK: only the resourceVersion matters; the null/empty fields do not fail it.
    CHECK(evs[4].resource_version == "229");
    CHECK(evs[4].object.metadata.name.empty());
    CHECK(evs[4].object.address_type == AddressType::unset);
    CHECK(evs[4].object.endpoints.empty());
  }

  TEST_CASE("a watch with no resourceVersion starts with synthetic ADDED events that decode") {
    Decoder d;
    int added = 0;
    for (auto& l : fixture_lines("watch-endpointslices-no-rv.jsonl")) {
      auto r = d.decode_event<EndpointSlice>(l);
      REQUIRE_MESSAGE(r.ok(), r.error().reason);
      if (r->type == EventType::added) ++added;
    }
    CHECK(added >= 2);
  }

  TEST_CASE("a watch ERROR event carries the 410 Expired Status") {
    Decoder d;
    auto r = d.decode_event<EndpointSlice>(fixture_lines("watch-error-expired-410.jsonl").at(0));
    REQUIRE_MESSAGE(r.ok(), r.error().reason);
    CHECK(r->type == EventType::error);
    CHECK(r->status.code == 410);
    CHECK(r->status.reason == "Expired");
    CHECK(r->status.status == "Failure");
    CHECK(r->status.message == "too old resource version: 1 (192)");
    CHECK(r->resource_version.empty());
  }

  TEST_CASE("a captured BOOKMARK carries only the resourceVersion") {
    Decoder d;
    auto r = d.decode_event<EndpointSlice>(fixture_lines("watch-bookmark.jsonl").at(0));
    REQUIRE_MESSAGE(r.ok(), r.error().reason);
    CHECK(r->type == EventType::bookmark);
    CHECK(r->resource_version == "231");
  }

  TEST_CASE("nil conditions default to ready and serving and not terminating, and the raw values are kept") {
    Decoder d;
    auto r = d.decode<EndpointSlice>(fixture("slice-edge-cases.json"));
    REQUIRE_MESSAGE(r.ok(), r.error().reason);
    const auto& e = r->endpoints;
    REQUIRE(e.size() == 5);
    for (int i = 0; i < 3; ++i) {
      CAPTURE(i);
      CHECK_FALSE(e[i].conditions.ready.has_value());
      CHECK_FALSE(e[i].conditions.serving.has_value());
      CHECK_FALSE(e[i].conditions.terminating.has_value());
      CHECK(e[i].conditions.defaulted() == kupstream::EndpointConditions{true, true, false});
    }
    // Terminating and still serving.
    CHECK(e[3].conditions.ready == std::optional<bool>(false));
    CHECK(e[3].conditions.serving == std::optional<bool>(true));
    CHECK(e[3].conditions.terminating == std::optional<bool>(true));
    CHECK(e[3].conditions.defaulted() == kupstream::EndpointConditions{false, true, true});
    CHECK(e[3].node_name == "node-b");
    CHECK(e[3].zone == "zone-b");
    CHECK(e[3].hostname == "pod-13");
    CHECK(e[3].hint_zones == std::vector<std::string>{"zone-b", "zone-c"});
    REQUIRE(e[3].target_ref.has_value());
    CHECK(e[3].target_ref->kind == "Pod");
    CHECK(e[3].target_ref->name == "httpbin-7d9c-13");
    CHECK(e[3].target_ref->namespace_ == "default");
    CHECK(e[4].addresses == AddressList{"10.1.0.14", "10.1.0.15"});
    CHECK(e[4].addresses.size() == 2);
    CHECK(std::vector<std::string>(e[4].addresses.begin(), e[4].addresses.end()) ==
          std::vector<std::string>{"10.1.0.14", "10.1.0.15"});
    CHECK_FALSE(e[4].target_ref.has_value());
    CHECK(e[4].hint_zones.empty());
  }

  TEST_CASE("metadata, annotations, unnamed and port-less ports decode and unknown fields are ignored") {
    Decoder d;
    auto r = d.decode<EndpointSlice>(fixture("slice-edge-cases.json"));
    REQUIRE_MESSAGE(r.ok(), r.error().reason);
    CHECK(r->metadata.name == "httpbin-abc12");
    CHECK(r->metadata.annotation(kLastChangeTriggerTimeAnnotation) == "2026-11-27T05:38:15Z");
    CHECK(r->metadata.annotation("absent").empty());
    CHECK(r->service_name() == "httpbin");
    REQUIRE(r->ports.size() == 3);
    CHECK(r->ports[0].name.empty());
    CHECK(r->ports[0].port == std::optional<std::int32_t>(80));
    CHECK(r->ports[0].protocol == "TCP");
    CHECK(r->ports[1].name == "metrics");
    CHECK_FALSE(r->ports[1].port.has_value());
    CHECK(r->ports[1].protocol == "UDP");
    CHECK(r->ports[1].app_protocol == "prometheus");
    CHECK(r->ports[2].app_protocol == "kubernetes.io/h2c");
  }

  TEST_CASE("IPv6 and FQDN address types decode") {
    Decoder d;
    auto v6 = d.decode<EndpointSlice>(fixture("slice-ipv6.json"));
    REQUIRE_MESSAGE(v6.ok(), v6.error().reason);
    CHECK(v6->address_type == AddressType::ipv6);
    CHECK(v6->endpoints[0].addresses[0] == "fd00:10:244::5");
    CHECK(v6->endpoints[1].zone == "z1");
    auto fq = d.decode<EndpointSlice>(fixture("slice-fqdn.json"));
    REQUIRE_MESSAGE(fq.ok(), fq.error().reason);
    CHECK(fq->address_type == AddressType::fqdn);
    CHECK(fq->endpoints[0].addresses[0] == "api.example.test");
    CHECK(fq->ports[0].name.empty());
    CHECK(std::string(address_type_name(fq->address_type)) == "FQDN");
  }

  TEST_CASE("null endpoints and ports read as empty lists") {
    Decoder d;
    auto r = d.decode<EndpointSlice>(fixture("slice-empty-endpoints.json"));
    REQUIRE_MESSAGE(r.ok(), r.error().reason);
    CHECK(r->endpoints.empty());
    CHECK(r->ports.empty());
  }

  TEST_CASE("a missing address list names the slice and the endpoint index") {
    Decoder d;
    auto r = d.decode<EndpointSlice>(fixture("slice-missing-addresses.json"));
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == make_error_code(Errc::decode_error));
    CHECK(r.error().reason == "EndpointSlice default/httpbin-abc12: endpoints[2].addresses is missing");
  }

  TEST_CASE("missing addressType, name and a wrongly typed port are errors naming the field") {
    Decoder d;
    auto a = d.decode<EndpointSlice>(fixture("slice-missing-address-type.json"));
    REQUIRE_FALSE(a.ok());
    CHECK(a.error().reason == "EndpointSlice demo/web-x: addressType is missing");
    auto n = d.decode<EndpointSlice>(fixture("slice-missing-name.json"));
    REQUIRE_FALSE(n.ok());
    CHECK(n.error().reason == "EndpointSlice demo/<unnamed>: metadata.name is missing");
    auto p = d.decode<EndpointSlice>(fixture("slice-bad-port.json"));
    REQUIRE_FALSE(p.ok());
    CHECK(p.error().reason == "EndpointSlice demo/web-p: ports[0].port: expected an integer, got string");
  }

  TEST_CASE("a failing object inside a watch event is named with the event type") {
    Decoder d;
    std::string line = R"({"type":"MODIFIED","object":)" + fixture("slice-missing-addresses.json") + "}";
    auto r = d.decode_event<EndpointSlice>(line);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().reason ==
          "EndpointSlice default/httpbin-abc12 (MODIFIED event): endpoints[2].addresses is missing");
  }

  TEST_CASE("an event whose object comes before its type still decodes") {
    Decoder d;
    auto r = d.decode_event<EndpointSlice>(fixture("event-object-before-type.json"));
    REQUIRE_MESSAGE(r.ok(), r.error().reason);
    CHECK(r->type == EventType::deleted);
    CHECK(r->object.metadata.name == "web-z");
    CHECK(r->object.endpoints[0].addresses[0] == "10.1.2.3");
  }

  TEST_CASE("unknown event types, wrong kinds and missing event fields are errors") {
    Decoder d;
    auto u = d.decode_event<EndpointSlice>(fixture("event-unknown-type.json"));
    REQUIRE_FALSE(u.ok());
    CHECK(u.error().reason == "watch event: type: unknown event type \"RENAMED\"");
    auto k = d.decode_event<EndpointSlice>(fixture("event-wrong-kind.json"));
    REQUIRE_FALSE(k.ok());
    CHECK(k.error().reason == "EndpointSlice <unnamed> (ADDED event): kind: expected \"EndpointSlice\", got \"Service\"");
    auto t = d.decode_event<EndpointSlice>(R"({"object":{}})");
    REQUIRE_FALSE(t.ok());
    CHECK(t.error().reason == "watch event: type is missing");
    auto o = d.decode_event<EndpointSlice>(R"({"type":"ADDED"})");
    REQUIRE_FALSE(o.ok());
    CHECK(o.error().reason == "watch event: object is missing");
  }

  TEST_CASE("malformed JSON is a decode error, never a crash") {
    Decoder d;
    const char* bad[] = {"", "   ", "{", "[", "null", "42", "\"x\"", "{\"type\":", R"({"type":"ADDED","object":{"metadata":)",
                         R"({"type":"ADDED","object":{}}garbage)", "{\"type\":\"ADDED\",\"object\":{\"kind\":\"EndpointSlice\"]}",
                         "\xff\xfe{}", R"({"type":"ADDED","object":{"metadata":{"name":"a\u12"}}})"};
    for (const char* b : bad) {
      CAPTURE(b);
      auto r = d.decode_event<EndpointSlice>(b);
      REQUIRE_FALSE(r.ok());
      CHECK(r.error().code == make_error_code(Errc::decode_error));
      CHECK_FALSE(r.error().reason.empty());
      auto s = d.decode<EndpointSlice>(b);
      CHECK_FALSE(s.ok());
      auto l = d.decode_list<EndpointSlice>(b);
      CHECK_FALSE(l.ok());
    }
  }

  TEST_CASE("trailing content after a complete object is an error") {
    Decoder d;
    auto r = d.decode<Node>(fixture("node.json") + "{}");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().reason.find("trailing content") != std::string::npos);
  }

  TEST_CASE("a real LIST body decodes its resourceVersion and items, compact or pretty") {
    Decoder d;
    for (const char* name : {"list-endpointslices.json", "list-endpointslices-pretty.json"}) {
      CAPTURE(name);
      auto r = d.decode_list<EndpointSlice>(fixture(name));
      REQUIRE_MESSAGE(r.ok(), r.error().reason);
      CHECK(r->resource_version == "224");
      CHECK(r->continue_token.empty());
      REQUIRE(r->items.size() == 1);
      CHECK(r->items[0].metadata.name == "web-1");
      CHECK(r->items[0].endpoints[0].addresses[0] == "10.1.0.1");
    }
    auto lim = d.decode_list<EndpointSlice>(fixture("list-endpointslices-limited.json"));
    REQUIRE_MESSAGE(lim.ok(), lim.error().reason);
    CHECK_FALSE(lim->items.empty());
  }

  TEST_CASE("a LIST with a continue token, remainingItemCount and a bad item reports the item") {
    Decoder d;
    auto ok = d.decode_list<EndpointSlice>(
        R"({"kind":"EndpointSliceList","metadata":{"resourceVersion":"10","continue":"abc","remainingItemCount":7},"items":[]})");
    REQUIRE_MESSAGE(ok.ok(), ok.error().reason);
    CHECK(ok->continue_token == "abc");
    CHECK(ok->remaining_item_count == std::optional<std::int64_t>(7));
    std::string bad = R"({"kind":"EndpointSliceList","metadata":{"resourceVersion":"10"},"items":[)" +
                      fixture("slice-fqdn.json") + "," + fixture("slice-missing-addresses.json") + "]}";
    auto r = d.decode_list<EndpointSlice>(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().reason ==
          "EndpointSliceList items[1]: EndpointSlice default/httpbin-abc12: endpoints[2].addresses is missing");
    auto norv = d.decode_list<EndpointSlice>(R"({"kind":"EndpointSliceList","metadata":{},"items":null})");
    REQUIRE_FALSE(norv.ok());
    CHECK(norv.error().reason == "EndpointSliceList: metadata.resourceVersion is missing");
  }

  TEST_CASE("Status bodies of real 401, 403, 410 and 422 answers decode") {
    Decoder d;
    auto s401 = d.decode_status(fixture("status-401-unauthorized.json"));
    REQUIRE(s401.ok());
    CHECK(s401->code == 401);
    CHECK(s401->reason == "Unauthorized");
    auto s403 = d.decode_status(fixture("status-403-forbidden.json"));
    REQUIRE(s403.ok());
    CHECK(s403->code == 403);
    CHECK(s403->message.find("system:anonymous") != std::string::npos);
    auto s410 = d.decode_status(fixture("status-410-expired-continue.json"));
    REQUIRE(s410.ok());
    CHECK(s410->code == 410);
    CHECK(s410->reason == "Expired");
    CHECK(s410->continue_token == "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6LTEsInN0YXJ0Ijoid2ViLTFcdTAwMDAifQ");
    auto s410e = d.decode_status(fixture("status-410-expired-exact.json"));
    REQUIRE(s410e.ok());
    CHECK(s410e->continue_token.empty());
    auto s422 = d.decode_status(fixture("status-422-invalid.json"));
    REQUIRE(s422.ok());
    CHECK(s422->code == 422);
    CHECK(s422->reason == "Invalid");
    auto s429 = d.decode_status(
        R"({"kind":"Status","status":"Failure","reason":"TooManyRequests","details":{"retryAfterSeconds":3},"code":429})");
    REQUIRE(s429.ok());
    CHECK(s429->retry_after_seconds == std::optional<std::int32_t>(3));
    auto notstatus = d.decode_status(R"({"kind":"Pod"})");
    REQUIRE_FALSE(notstatus.ok());
    CHECK(notstatus.error().reason == "Status: kind: expected \"Status\", got \"Pod\"");
    auto html = d.decode_status("<html>502 Bad Gateway</html>");
    CHECK_FALSE(html.ok());
  }

  TEST_CASE("a Service decodes ports with numeric, named and absent targetPort") {
    Decoder d;
    auto r = d.decode<Service>(fixture("service.json"));
    REQUIRE_MESSAGE(r.ok(), r.error().reason);
    CHECK(r->metadata.name == "web");
    CHECK(r->type == "ClusterIP");
    CHECK(r->cluster_ip == "10.96.129.208");
    CHECK(r->selector.at("app") == "web");
    REQUIRE(r->ports.size() == 3);
    CHECK(r->ports[0].port == 80);
    CHECK(r->ports[0].target_port.number == std::optional<std::int32_t>(8080));
    CHECK(r->ports[1].target_port.name == "grpc-port");
    CHECK_FALSE(r->ports[1].target_port.number.has_value());
    CHECK(r->ports[1].app_protocol == "grpc");
    CHECK_FALSE(r->ports[2].target_port.is_set());
    auto bad = d.decode<Service>(fixture("service-missing-port.json"));
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().reason == "Service demo/web: spec.ports[1].port is missing");
  }

  TEST_CASE("a Node decodes its name, labels and resourceVersion without a namespace") {
    Decoder d;
    auto r = d.decode<Node>(fixture("node.json"));
    REQUIRE_MESSAGE(r.ok(), r.error().reason);
    CHECK(r->metadata.name == "node-a");
    CHECK(r->metadata.resource_version == "31");
    CHECK(r->metadata.label("topology.kubernetes.io/zone") == "zone-a");
    CHECK(r->metadata.labels.count("node-role.kubernetes.io/gateway") == 1);
    auto ev = d.decode_event<Node>(R"({"type":"DELETED","object":)" + fixture("node.json") + "}");
    REQUIRE_MESSAGE(ev.ok(), ev.error().reason);
    CHECK(ev->type == EventType::deleted);
  }

  TEST_CASE("Service and Node LIST bodies and events decode with the same rules") {
    Decoder d;
    auto sl = d.decode_list<Service>(R"({"kind":"ServiceList","apiVersion":"v1","metadata":{"resourceVersion":"900"},"items":[)" +
                                     fixture("service.json") + "]}");
    REQUIRE_MESSAGE(sl.ok(), sl.error().reason);
    CHECK(sl->resource_version == "900");
    REQUIRE(sl->items.size() == 1);
    CHECK(sl->items[0].ports.size() == 3);
    auto nl = d.decode_list<Node>(R"({"kind":"NodeList","metadata":{"resourceVersion":"901"},"items":[)" + fixture("node.json") +
                                  "," + fixture("node.json") + "]}");
    REQUIRE_MESSAGE(nl.ok(), nl.error().reason);
    CHECK(nl->items.size() == 2);
    auto wrong = d.decode_list<Node>(R"({"kind":"ServiceList","metadata":{"resourceVersion":"1"},"items":[]})");
    REQUIRE_FALSE(wrong.ok());
    CHECK(wrong.error().reason == "NodeList: kind: expected \"NodeList\", got \"ServiceList\"");
    auto bm = d.decode_event<Service>(R"({"type":"BOOKMARK","object":{"kind":"Service","metadata":{"resourceVersion":"902"},"spec":null}})");
    REQUIRE_MESSAGE(bm.ok(), bm.error().reason);
    CHECK(bm->resource_version == "902");
  }

  TEST_CASE("escaped keys and strings are unescaped") {
    Decoder d;
    auto r = d.decode<Node>(R"({"metadata":{"n\u0061me":"node-\u00e9","resourceVersion":"1","labels":{"a\"b":"c\\d"}}})");
    REQUIRE_MESSAGE(r.ok(), r.error().reason);
    CHECK(r->metadata.name == "node-\xc3\xa9");
    CHECK(r->metadata.label("a\"b") == "c\\d");
  }

  TEST_CASE("invalid escapes in keys are decode errors, also when the key is reported") {
    // Found by the fuzzer: a map key with an invalid escape used to be unescaped twice.
    Decoder d;
    auto r = d.decode<Node>(R"({"metadata":{"name":"n","resourceVersion":"1","labels":{"a\mb":"x"}}})");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().reason.find("metadata.labels.a\\mb: malformed JSON") != std::string::npos);
    auto u = d.decode<Node>(R"({"metadata":{"name":"n","resourceVersion":"1"},"sp\qec":1})");
    CHECK_FALSE(u.ok());
  }

  TEST_CASE("one decoder decodes many documents of different sizes in a row") {
    Decoder d;
    std::string big = fixture("slice-edge-cases.json");
    for (int i = 0; i < 50; ++i) {
      auto a = d.decode<EndpointSlice>(big);
      REQUIRE(a.ok());
      auto b = d.decode<Node>(fixture("node.json"));
      REQUIRE(b.ok());
    }
  }
}
