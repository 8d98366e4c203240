// SharedNodeWatch::apply_event: which Node watch events change the set of matching Node names.
// Only those bump the watch's epoch and reach its views (a status update of a listed Node, the
// most common Node event, must not make every view with node labels re-merge its slices).
#include <doctest/doctest.h>

#include "discovery/shared_node_watch.h"
#include "kube/objects.h"

using namespace kupstream;
using namespace kupstream::detail;
using kupstream::kube::EventType;

TEST_SUITE("SharedNodeWatch") {
  TEST_CASE("only events that add or remove a matching Node change the names") {
    SharedNodeWatch::Names names = {"node-a"};
    // A status update (MODIFIED) of a Node already listed, and an ADDED for one (a relisted
    // watch may repeat it): no change.
    CHECK_FALSE(SharedNodeWatch::apply_event(names, EventType::modified, "node-a"));
    CHECK_FALSE(SharedNodeWatch::apply_event(names, EventType::added, "node-a"));
    CHECK(names == SharedNodeWatch::Names{"node-a"});
    // A Node that comes to match (ADDED, or MODIFIED when it was relabelled into the selector).
    CHECK(SharedNodeWatch::apply_event(names, EventType::modified, "node-b"));
    CHECK(SharedNodeWatch::apply_event(names, EventType::added, "node-c"));
    CHECK(names == SharedNodeWatch::Names{"node-a", "node-b", "node-c"});
    // DELETED: gone, or relabelled out of the selector; one never listed changes nothing.
    CHECK(SharedNodeWatch::apply_event(names, EventType::deleted, "node-b"));
    CHECK_FALSE(SharedNodeWatch::apply_event(names, EventType::deleted, "node-b"));
    CHECK_FALSE(SharedNodeWatch::apply_event(names, EventType::deleted, "node-z"));
    CHECK(names == SharedNodeWatch::Names{"node-a", "node-c"});
  }
}
