/** @file
 * kupstream_c.h: the C ABI of kupstream (C11; also compiles as C++).
 *
 * A thin layer over the C++ API (cluster_client.h, endpoint_watcher.h, upstream.h) for C hosts
 * and for hosts that load C libraries through an FFI (LuaJIT, Python ctypes, Rust, Go's cgo).
 * The page for it is docs/bindings-c.md.
 *
 * Handles (all opaque):
 *   - kup_cluster   a ClusterClient: one Kubernetes API server (kubeconfig + context, or in-cluster)
 *   - kup_watcher   an EndpointWatcher: the ready endpoints of one Service port
 *   - kup_snapshot  an immutable EndpointSet of a watcher
 *   - kup_upstream  an Upstream, configured by one YAML/JSON document (see kup_upstream_create)
 *   - kup_picker    an immutable Picker of an upstream
 *   - kup_forward   one request sent through an upstream (kup_upstream_forward, kup_worker_forward)
 *   - kup_worker    forwards an upstream's requests on another loop (one loop per core)
 *
 * Threads: every function runs on the thread of the handle's uv loop (the "loop thread"), except
 *   the ones marked "Any thread": kup_upstream_pick, kup_upstream_picker, kup_worker_pick,
 *   kup_worker_picker, kup_worker_ready and everything on a kup_snapshot or kup_picker, plus the
 *   plain functions (version, errors, hash). A kup_worker and its kup_forwards belong to the
 *   worker's loop thread.
 *
 * Lifetime (the C++ API's rules):
 *   - A create that fails leaves nothing to destroy (*out is set to NULL).
 *   - Every handle a create returns is destroyed exactly once with its destroy function; destroy
 *     may be called at any time on the loop thread, including inside the handle's own callbacks.
 *     After it returns, no callback of that handle runs.
 *   - A kup_cluster must outlive its watchers and the upstreams that use it.
 *   - A kup_forward may outlive its upstream (it is then canceled silently).
 *   - Snapshots and pickers are reference-counted copies: they stay valid until destroyed, on any
 *     thread, whatever happens to the handle they came from.
 *   - The library never runs or closes the loop. Once every handle is destroyed, the loop drains
 *     and uv_loop_close() succeeds.
 *
 * Callbacks: every callback receives the `void* data` given with it; they run on the loop thread,
 *   never inside the call that registered them. Pointers passed to a callback (strings, heads,
 *   states, snapshots) are valid only until it returns.
 *
 * Errors: functions that can fail return a kup_errc (KUP_OK = 0) and, when given a non-NULL
 *   `kup_error* err`, fill it with the code and a human reason naming the cluster, namespace,
 *   service or field at fault (release it with kup_error_clear). There is no global error state.
 *
 * Signals: the library writes its own sockets with send(..., MSG_NOSIGNAL), so a peer that resets
 *   one of kupstream's connections cannot raise SIGPIPE (docs/security.md); the host need not
 *   ignore SIGPIPE for them. A host that writes its own sockets with libuv still has to ignore
 *   SIGPIPE for those.
 */
#ifndef KUPSTREAM_KUPSTREAM_C_H
#define KUPSTREAM_KUPSTREAM_C_H

#include <stddef.h>
#include <stdint.h>

#include "kupstream/version.h"

#if defined(KUPSTREAM_STATIC)
#define KUP_API
#elif defined(KUPSTREAM_BUILDING)
#define KUP_API __attribute__((visibility("default")))
#else
/** Marks an exported function: default visibility while the library is built, empty for hosts. */
#define KUP_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** libuv's loop type, declared here so that the header does not need uv.h. */
typedef struct uv_loop_s uv_loop_t;

/* ------------------------------------------------------------------------------------------ */
/* Version: KUP_VERSION_* describe the header, kup_version() the library actually loaded.      */

/** The major version of this header (kupstream/version.h's KUPSTREAM_VERSION_MAJOR). */
#define KUP_VERSION_MAJOR KUPSTREAM_VERSION_MAJOR
/** The minor version of this header (KUPSTREAM_VERSION_MINOR). */
#define KUP_VERSION_MINOR KUPSTREAM_VERSION_MINOR
/** The patch version of this header (KUPSTREAM_VERSION_PATCH). */
#define KUP_VERSION_PATCH KUPSTREAM_VERSION_PATCH
/** The version of this header as a string, e.g. "0.1.0" (KUPSTREAM_VERSION_STRING). */
#define KUP_VERSION_STRING KUPSTREAM_VERSION_STRING

/** The version of this header as one number: (major << 16) | (minor << 8) | patch. Compare it
 * with kup_version() to detect a library that differs from the header. */
#define KUP_VERSION_NUMBER ((KUP_VERSION_MAJOR << 16) | (KUP_VERSION_MINOR << 8) | KUP_VERSION_PATCH)
/** The version of the library actually loaded, as (major << 16) | (minor << 8) | patch (the
 * form of KUP_VERSION_NUMBER). Any thread. */
KUP_API unsigned kup_version(void);
/** The version of the library actually loaded as a static string, e.g. "0.1.0". Any thread. */
KUP_API const char* kup_version_string(void);

/* ------------------------------------------------------------------------------------------ */
/* Errors.                                                                                       */

/** The error codes. Codes 1..24 mirror kupstream::Errc (include/kupstream/error.h) value for
 * value; kup_strerror() gives each one's message and kup_errc_name() its name. */
typedef enum kup_errc {
  KUP_OK = 0,                    /**< success */
  KUP_INVALID_ARGUMENT = 1,      /**< invalid argument */
  KUP_INVALID_CONFIG = 2,        /**< invalid configuration */
  KUP_NO_ENDPOINT = 3,           /**< no endpoint available */
  KUP_OPERATION_CANCELED = 4,    /**< operation canceled */
  KUP_TIMED_OUT = 5,             /**< timed out */
  KUP_CONNECT_FAILED = 6,        /**< connection failed */
  KUP_CONNECTION_CLOSED = 7,     /**< connection closed by peer */
  KUP_TLS_HANDSHAKE_FAILED = 8,  /**< TLS handshake failed */
  KUP_TLS_VERIFY_FAILED = 9,     /**< TLS certificate verification failed */
  KUP_HTTP_PARSE_ERROR = 10,     /**< malformed HTTP message */
  KUP_HTTP_LIMIT_EXCEEDED = 11,  /**< HTTP size or count limit exceeded */
  KUP_RESOLVE_FAILED = 12,       /**< host name resolution failed */
  KUP_POOL_EXHAUSTED = 13,       /**< connection pool exhausted */
  KUP_UNAUTHORIZED = 14,         /**< unauthorized (401) */
  KUP_FORBIDDEN = 15,            /**< forbidden (403) */
  KUP_NOT_FOUND = 16,            /**< not found (404) */
  KUP_GONE = 17,                 /**< resource version expired (410) */
  KUP_TOO_MANY_REQUESTS = 18,    /**< too many requests (429) */
  KUP_SERVER_ERROR = 19,         /**< server error (5xx) */
  KUP_DECODE_ERROR = 20,         /**< malformed Kubernetes object */
  KUP_CREDENTIAL_ERROR = 21,     /**< credential could not be obtained */
  KUP_UNSUPPORTED = 22,          /**< unsupported feature */
  KUP_IO_ERROR = 23,             /**< I/O error */
  KUP_INTERNAL = 24,             /**< internal error (also: any unexpected C++ exception inside the library) */
  /** C ABI only: memory could not be allocated (std::bad_alloc inside the library). */
  KUP_NO_MEMORY = 1000
} kup_errc;

/** The message of a code, e.g. "no endpoint available"; "unknown error" outside the table.
 * Any thread; the string is static. */
KUP_API const char* kup_strerror(int code);
/** The code's name, e.g. "KUP_NO_ENDPOINT"; "KUP_UNKNOWN" outside the table. Any thread. */
KUP_API const char* kup_errc_name(int code);

/** A failure's code and reason. Initialize with {0} (or KUP_ERROR_INIT); functions taking a
 * kup_error* fill it on failure (after clearing what it held) and leave it alone on success.
 * `reason` is NUL-terminated, owned by the kup_error and released by kup_error_clear; it is NULL
 * only when no memory was left to hold it. */
typedef struct kup_error {
  int code;     /**< a kup_errc; KUP_OK when nothing failed */
  char* reason; /**< what failed and why, naming the cluster, namespace, service or field; or NULL */
} kup_error;
/** An initializer for an empty kup_error: `kup_error err = KUP_ERROR_INIT;`. */
#define KUP_ERROR_INIT {0, NULL}
/** Frees `reason`, sets it to NULL and `code` to KUP_OK; the kup_error can be used again. Any
 * thread; NULL is ignored. */
KUP_API void kup_error_clear(kup_error* err);

/* ------------------------------------------------------------------------------------------ */
/* Logging.                                                                                      */

/** The severity of a log message (kup_log_fn). */
typedef enum kup_log_level { KUP_LOG_DEBUG = 0, KUP_LOG_INFO = 1, KUP_LOG_WARNING = 2, KUP_LOG_ERROR = 3 } kup_log_level;
/** @var KUP_LOG_DEBUG
 * Detail for debugging (e.g. each retry of a request). */
/** @var KUP_LOG_INFO
 * A normal event worth a line (e.g. a relist, a rotated token file). */
/** @var KUP_LOG_WARNING
 * Wrong or risky, but service goes on (a failing watch, an ejected Pod, TLS checks off). */
/** @var KUP_LOG_ERROR
 * Something could not be set up (e.g. a Pod's connection pool). */
/** The log callback. The library never prints: messages go to it on the loop thread,
 * synchronously; `message` (length `len`, not NUL-terminated) is valid during the call, and
 * `data` is the pointer given with the callback. It must not destroy the handle that logs. */
typedef void (*kup_log_fn)(kup_log_level level, const char* message, size_t len, void* data);

/* ------------------------------------------------------------------------------------------ */
/* Clusters.                                                                                     */

/** A ClusterClient: one Kubernetes API server (opaque; kup_cluster_create, kup_cluster_destroy). */
typedef struct kup_cluster kup_cluster;

/** The options of kup_cluster_create. Versioned: call kup_cluster_options_init() first (it sets
 * `size` and the defaults), then change fields. New fields are only ever appended; the library
 * reads `size` bytes, so a host compiled against an older header keeps working. */
typedef struct kup_cluster_options {
  size_t size;              /**< sizeof(kup_cluster_options) of the caller's header */
  const char* name;         /**< the name upstream documents use in services[].cluster, and in
                               messages; NULL = the context's name ("in-cluster" in-cluster) */
  const char* kubeconfig;   /**< a kubeconfig file; NULL = $KUBECONFIG, else $HOME/.kube/config */
  const char* context;      /**< NULL = the current-context */
  int in_cluster;           /**< nonzero: the Pod's service account (kubeconfig/context unused) */
  uint32_t watch_timeout_s;      /**< default 300; randomized to [t, 2t) per watch */
  uint32_t idle_timeout_ms;      /**< 0 = watch timeout + 30 s */
  uint32_t backoff_initial_ms;   /**< default 800 */
  uint32_t backoff_max_ms;       /**< default 30000 */
  int watch_list;                /**< nonzero: try sendInitialEvents streaming first */
  kup_log_fn log;                /**< may be NULL */
  void* log_data;                /**< passed to `log` as its `data` */
  /** nonzero: one EndpointSlice watch per Service; 0 (the default): one per namespace, shared by
   * the Services watched there (docs/discovery.md, "Watch fan-in") */
  int slice_watch_per_service;
} kup_cluster_options;

/** Fills *options with the defaults and sets `size`. NULL is ignored. */
KUP_API void kup_cluster_options_init(kup_cluster_options* options);

/** Loads the configuration (kubeconfig or in-cluster) and creates the client. Nothing is
 * contacted until something is watched. Errors: KUP_INVALID_ARGUMENT (NULL loop/options/out,
 * unknown `size`), KUP_INVALID_CONFIG / KUP_IO_ERROR / KUP_UNSUPPORTED naming the file, context
 * and field. */
KUP_API int kup_cluster_create(uv_loop_t* loop, const kup_cluster_options* options, kup_cluster** out,
                               kup_error* err);
/** Requires that its watchers are destroyed and its upstreams too. NULL is ignored. */
KUP_API void kup_cluster_destroy(kup_cluster* cluster);
/** The cluster's name (valid while the cluster lives). */
KUP_API const char* kup_cluster_name(const kup_cluster* cluster);

/* ------------------------------------------------------------------------------------------ */
/* Snapshots.                                                                                    */

/** An immutable EndpointSet of a watcher: the endpoints of one Service port (opaque; any thread;
 * kup_watcher_snapshot, kup_snapshot_copy, kup_snapshot_destroy). */
typedef struct kup_snapshot kup_snapshot;

/** Which list of a snapshot to read. */
typedef enum kup_endpoint_list { KUP_ENDPOINTS_READY = 0, KUP_ENDPOINTS_DRAINING = 1 } kup_endpoint_list;
/** @var KUP_ENDPOINTS_READY
 * The ready endpoints. */
/** @var KUP_ENDPOINTS_DRAINING
 * Serving but terminating endpoints: no new traffic unless nothing is ready. */

/** One endpoint. Strings are NUL-terminated and live as long as the snapshot (or picker) they came
 * from; "" when unknown. */
typedef struct kup_endpoint {
  const char* address; /**< IPv4 or IPv6 literal, no brackets */
  uint16_t port;       /**< the port number */
  const char* pod_name;  /**< the Pod's name */
  const char* node_name; /**< the name of the Pod's node */
  const char* zone;      /**< the node's zone */
  int ready, serving, terminating; /* EndpointSlice conditions, 0 or 1 (documented below) */
} kup_endpoint;
/** @var kup_endpoint::ready
 * EndpointSlice condition `ready`, 0 or 1. */
/** @var kup_endpoint::serving
 * EndpointSlice condition `serving`, 0 or 1. */
/** @var kup_endpoint::terminating
 * EndpointSlice condition `terminating`, 0 or 1. */

/** A new reference to the same snapshot (cheap); destroy it separately. */
KUP_API kup_snapshot* kup_snapshot_copy(const kup_snapshot* snapshot);
/** Releases this reference; the others stay valid. NULL is ignored. */
KUP_API void kup_snapshot_destroy(kup_snapshot* snapshot);
/** The snapshot's generation: grows by one for each published change (0 for NULL). */
KUP_API uint64_t kup_snapshot_generation(const kup_snapshot* snapshot);
/** The Kubernetes resourceVersion the snapshot reflects ("" for NULL); valid as long as the
 * snapshot. */
KUP_API const char* kup_snapshot_resource_version(const kup_snapshot* snapshot);
/** Number of endpoints in a list (sorted by address, then port). */
KUP_API size_t kup_snapshot_count(const kup_snapshot* snapshot, kup_endpoint_list list);
/** Fills *out with the index-th endpoint of a list. KUP_INVALID_ARGUMENT past the end. */
KUP_API int kup_snapshot_endpoint(const kup_snapshot* snapshot, kup_endpoint_list list, size_t index,
                                  kup_endpoint* out);

/* ------------------------------------------------------------------------------------------ */
/* Watchers.                                                                                     */

/** An EndpointWatcher: the ready endpoints of one Service port (opaque; kup_watch,
 * kup_watcher_destroy). */
typedef struct kup_watcher kup_watcher;

/** The phase of a watch. */
typedef enum kup_watch_phase {
  KUP_WATCH_SYNCING = 0,   /**< not listed yet: no snapshot */
  KUP_WATCH_SYNCED = 1,    /**< the snapshot reflects the API server */
  KUP_WATCH_STALE = 2,     /**< the watch is failing; the last good snapshot stays in service */
  KUP_WATCH_FORBIDDEN = 3, /**< RBAC refuses a needed verb (the reason says which rule to add) */
  KUP_WATCH_NOT_FOUND = 4  /**< the Service or its port does not exist: the snapshot is empty */
} kup_watch_phase;

/** A watcher's state, passed to on_state. Valid during the callback only. */
typedef struct kup_watch_state {
  kup_watch_phase phase;         /**< the current phase */
  const char* phase_name;        /**< "syncing", "synced", ... */
  const char* reason;            /**< names cluster, namespace, service, resource; "" when synced */
  int64_t since_unix_ms;         /**< when this phase began */
  uint64_t generation;           /**< of the current snapshot; 0 before the first */
  const char* resource_version;  /**< the resourceVersion of the current snapshot */
} kup_watch_state;

/** The callbacks of a watcher (kup_watch); they run on the loop thread. */
typedef struct kup_watcher_callbacks {
  /** Each new snapshot: the first once synced, then one per real change. The snapshot is
   * borrowed: kup_snapshot_copy() it to keep it. May destroy the watcher. May be NULL. */
  void (*on_change)(kup_watcher* watcher, const kup_snapshot* snapshot, void* data);
  /** Each phase (or reason) change. May destroy the watcher. May be NULL. */
  void (*on_state)(kup_watcher* watcher, const kup_watch_state* state, void* data);
  void* data; /**< passed to every callback */
} kup_watcher_callbacks;

/** Watches one Service port. `port` is a number ("8000") or a port name ("http"); `node_labels`
 * is NULL/"" or "key=value,key2=value2" (a Pod's node must carry all of them).
 * Errors: KUP_INVALID_ARGUMENT (NULL pointers), KUP_INVALID_CONFIG naming the field. */
KUP_API int kup_watch(kup_cluster* cluster, const char* namespace_name, const char* service, const char* port,
                      const char* node_labels, const kup_watcher_callbacks* callbacks, kup_watcher** out,
                      kup_error* err);
/** Unsubscribes; allowed inside its own callbacks. NULL is ignored. */
KUP_API void kup_watcher_destroy(kup_watcher* watcher);
/** The current snapshot as a new reference (destroy it), or NULL before the first sync. */
KUP_API kup_snapshot* kup_watcher_snapshot(const kup_watcher* watcher);
/** The current phase (and, when reason_out is not NULL, a copy of the reason that the caller
 * releases with kup_string_free). */
KUP_API kup_watch_phase kup_watcher_phase(const kup_watcher* watcher, char** reason_out);

/** Releases a string the library allocated for the caller. Any thread; NULL is ignored. */
KUP_API void kup_string_free(char* s);

/* ------------------------------------------------------------------------------------------ */
/* Upstreams.                                                                                    */

/** An Upstream: a named set of Services that requests go to, straight to their Pods (opaque;
 * kup_upstream_create, kup_upstream_destroy). */
typedef struct kup_upstream kup_upstream;
/** An immutable Picker of an upstream (opaque; any thread; kup_upstream_picker,
 * kup_picker_destroy). */
typedef struct kup_picker kup_picker;

/** Creates an Upstream from one document, YAML or JSON, in the shape of an entry of kup-gateway's
 * `upstreams:` list (docs/gateway.md): name, services (cluster, namespace, service, port, weight,
 * node_labels), scheme, host_header, tags, policy, weight_mode, hash_header, timeouts, retries,
 * outlier, health_check, tls, pools, slow_start, max_services, seed... every field of the C++
 * UpstreamConfig and UpstreamOptions. `length` is the text's size (or (size_t)-1 when it is
 * NUL-terminated). services[].cluster must name one of `clusters`. Errors:
 * KUP_INVALID_CONFIG with one line per problem, e.g.
 *   `upstream config:4: services[0].namespace: "Default" is not a DNS-1123 label`;
 * KUP_INVALID_ARGUMENT for NULL pointers. `log` may be NULL. */
KUP_API int kup_upstream_create(uv_loop_t* loop, const char* document, size_t length, kup_cluster* const* clusters,
                                size_t cluster_count, kup_log_fn log, void* log_data, kup_upstream** out,
                                kup_error* err);
/** Cancels its requests (no callback of theirs runs afterwards) and unsubscribes. Allowed inside
 * any callback of its requests. NULL is ignored. */
KUP_API void kup_upstream_destroy(kup_upstream* upstream);
/** The upstream's name, from its document (valid while the upstream lives; "" for NULL). */
KUP_API const char* kup_upstream_name(const kup_upstream* upstream);
/** The document's hash_header ("" when none): the request header whose value the host hashes
 * with kup_hash_key() for policy consistent_hash. */
KUP_API const char* kup_upstream_hash_header(const kup_upstream* upstream);
/** Nonzero once every service has synced and some Pod can take traffic. */
KUP_API int kup_upstream_ready(const kup_upstream* upstream);

/** A stable 64-bit hash of a request key for consistent_hash. Any thread. */
KUP_API uint64_t kup_hash_key(const char* key, size_t length);

/** What pick copies into the caller's storage. Sizes hold any valid value: an IPv6 literal, a Pod
 * name (DNS-1123 subdomain, <= 253), and "cluster/namespace/service:port". */
typedef struct kup_pick_result {
  char address[46];  /**< the Pod's IPv4 or IPv6 literal, NUL-terminated */
  uint16_t port;     /**< the Pod's port */
  char pod_name[254]; /**< the Pod's name, NUL-terminated */
  char service[600];  /**< "cluster/namespace/service:port" of the service the Pod belongs to */
} kup_pick_result;

/** Any thread. Picks a Pod for the host's own transport (`hash` is used by consistent_hash only).
 * Errors: KUP_NO_ENDPOINT (the reason says why, when err is given). The upstream must not be
 * destroyed while another thread is inside this call. */
KUP_API int kup_upstream_pick(const kup_upstream* upstream, uint64_t hash, kup_pick_result* out, kup_error* err);

/** Any thread. The current picker as a new reference (destroy it); never NULL for a live upstream
 * (NULL only when memory ran out). A picker stays valid after its upstream is destroyed. */
KUP_API kup_picker* kup_upstream_picker(const kup_upstream* upstream);
/** Releases this reference. NULL is ignored. Any thread. */
KUP_API void kup_picker_destroy(kup_picker* picker);
/** Like kup_upstream_pick, from this picker. Errors: KUP_NO_ENDPOINT, KUP_INVALID_ARGUMENT (NULL
 * picker or out). Any thread. */
KUP_API int kup_picker_pick(const kup_picker* picker, uint64_t hash, kup_pick_result* out, kup_error* err);
/** The picker's endpoints (weight 0 included), with their weight. */
KUP_API size_t kup_picker_count(const kup_picker* picker);
/** Fills *out with the index-th endpoint of the picker and, when `weight` is not NULL, *weight
 * with its weight. KUP_INVALID_ARGUMENT past the end. Any thread. */
KUP_API int kup_picker_endpoint(const kup_picker* picker, size_t index, kup_endpoint* out, uint32_t* weight);

/* ------------------------------------------------------------------------------------------ */
/* Statistics.                                                                                   */

/** An upstream's counters and state (kup_upstream_stats). */
typedef struct kup_stats {
  uint64_t requests, failures, retries, no_endpoint;
  uint32_t in_flight; /**< requests accepted and not completed yet */
  int panic;          /**< too few healthy Pods: all are used */
  int using_draining; /**< nothing ready anywhere: terminating-but-serving Pods are used */
  size_t pods;        /**< Pods known */
  size_t ejected;     /**< of which ejected */
  size_t services;    /**< ServiceRefs */
  size_t services_synced; /**< of which synced */
} kup_stats;
/** @var kup_stats::requests
 * Requests accepted by kup_upstream_forward. */
/** @var kup_stats::failures
 * Requests that completed with an error (no_endpoint included). */
/** @var kup_stats::retries
 * Retry attempts made. */
/** @var kup_stats::no_endpoint
 * Requests that failed with KUP_NO_ENDPOINT: no Pod to pick. */

/** Fills *out with the upstream's statistics. KUP_INVALID_ARGUMENT for NULL pointers. */
KUP_API int kup_upstream_stats(const kup_upstream* upstream, kup_stats* out);
/** The Prometheus text exposition (metric names kupstream_*, labelled upstream="name"), as a
 * NUL-terminated string the caller releases with kup_string_free; NULL when out of memory.
 * `length` (may be NULL) receives its length. */
KUP_API char* kup_upstream_metrics(const kup_upstream* upstream, size_t* length);

/** What zone-aware routing does now (kupstream::LocalityMode). */
typedef enum kup_locality_mode {
  KUP_LOCALITY_OFF = 0,       /**< zone-aware routing is not enabled */
  KUP_LOCALITY_LOCAL = 1,     /**< every new request stays in the local zone */
  KUP_LOCALITY_SPILL = 2,     /**< part stays local, the rest goes to other zones by spare capacity */
  KUP_LOCALITY_EVERYWHERE = 3 /**< no zone preference (below a threshold, panic, no local Pod) */
} kup_locality_mode;

/** Zone-aware routing of an upstream (kup_upstream_locality; the document's `locality:` block,
 * docs/upstream.md "Zone-aware routing"). Versioned: set `size` to sizeof(kup_locality_stats)
 * before the call; fields are only ever appended, and the library writes at most `size` bytes.
 * Per-zone figures are in kup_upstream_metrics (kupstream_upstream_zone_*). */
typedef struct kup_locality_stats {
  size_t size;                  /**< sizeof(kup_locality_stats) of the caller's header */
  int enabled;                  /**< nonzero when the document enables `locality` */
  kup_locality_mode mode;       /**< what the current picker does */
  int hints;                    /**< nonzero: zones come from EndpointSlice hints (kube-proxy's rules held) */
  double local_share;           /**< share of new requests the current picker keeps in the local zone (0..1) */
  uint64_t local_requests;      /**< attempts sent to local-zone Pods since the upstream was created */
  uint64_t cross_zone_requests; /**< attempts sent to Pods of other or unknown zones */
  size_t zones;                 /**< zones known (the local one included) */
  char zone[64];                /**< this host's zone, NUL-terminated ("" when not enabled) */
  char reason[256];             /**< why this mode, NUL-terminated (cut at 255 bytes) */
} kup_locality_stats;

/** Fills *out (up to out->size bytes) with the upstream's zone-aware routing state. Loop thread.
 * KUP_INVALID_ARGUMENT for NULL pointers or a `size` smaller than the fields up to `mode`. */
KUP_API int kup_upstream_locality(const kup_upstream* upstream, kup_locality_stats* out);

/* ------------------------------------------------------------------------------------------ */
/* Forwarding.                                                                                   */

/** One request sent through an upstream (opaque; kup_upstream_forward, kup_forward_destroy). */
typedef struct kup_forward kup_forward;

/** One HTTP header field; name and value are given by pointer and length. */
typedef struct kup_header {
  const char* name;  /**< the field name (may be NULL when name_len is 0) */
  size_t name_len;   /**< its length in bytes */
  const char* value; /**< the field value (may be NULL when value_len is 0) */
  size_t value_len;  /**< its length in bytes */
} kup_header;

/** A request. Strings are NUL-terminated unless a length says otherwise; everything is copied
 * during kup_upstream_forward. NULL strings take the default given. */
typedef struct kup_request {
  const char* method;          /**< NULL = "GET" */
  const char* target;          /**< origin-form path and query; NULL = "/" */
  const kup_header* headers;   /**< hop-by-hop headers are removed; Host is replaced by host_header */
  size_t header_count;         /**< the number of `headers` */
  const char* client_address;  /**< appended to X-Forwarded-For; NULL = none */
  const char* client_scheme;   /**< X-Forwarded-Proto; NULL = "http" */
  const char* client_host;     /**< X-Forwarded-Host and the Host when there is no override */
  const char* body;            /**< buffered body (streamed == 0); may be NULL when body_len is 0 */
  size_t body_len;             /**< the length of `body` */
  int streamed;                /**< nonzero: the body is written with kup_forward_write/end */
  int64_t content_length;      /**< streamed bodies: the length, or -1 = unknown (chunked) */
  uint64_t hash;               /**< consistent_hash key (kup_hash_key) */
} kup_request;

/** The Pod's response head; valid during on_head only (copy what you keep). */
typedef struct kup_response_head {
  int status;                 /**< the HTTP status code */
  const kup_header* headers;  /**< in order, hop-by-hop headers removed; not NUL-terminated */
  size_t header_count;        /**< the number of `headers` */
  int64_t content_length;     /**< -1 when unknown */
  const char* pod;            /**< "address:port" of the Pod that answered, NUL-terminated */
  uint32_t attempts;          /**< attempts made, this one included (1 = no retry) */
} kup_response_head;

/** The callbacks of a forwarded request. All run on the loop thread, never inside
 * kup_upstream_forward; any may destroy the kup_forward or the upstream. Each may be NULL. */
typedef struct kup_forward_callbacks {
  /** The response head arrived. */
  void (*on_head)(kup_forward* request, const kup_response_head* head, void* data);
  /** A piece of the response body; call kup_forward_pause() for backpressure. */
  void (*on_body)(kup_forward* request, const char* chunk, size_t len, void* data);
  /** A streamed request body may be written again (after kup_forward_write returned 0 writable). */
  void (*on_writable)(kup_forward* request, void* data);
  /** Exactly once unless the request (or its upstream) was destroyed first: KUP_OK, or
   * KUP_NO_ENDPOINT, KUP_CONNECT_FAILED, KUP_TIMED_OUT, KUP_CONNECTION_CLOSED, ... with a reason
   * naming the upstream and Pod. The request handle must still be destroyed. */
  void (*on_complete)(kup_forward* request, int code, const char* reason, void* data);
  void* data; /**< passed to every callback */
} kup_forward_callbacks;

/** Sends a request to a Pod and streams the response back. On success *out is the request handle,
 * to destroy exactly once (which cancels it if it is still running). The bytes leave when the
 * current loop phase ends (before the loop polls again); called from outside the loop's
 * callbacks, at the host's next uv_run (see docs/net.md). Errors (no callback runs):
 * KUP_INVALID_ARGUMENT (bad method, target or header: CR, LF or NUL). */
KUP_API int kup_upstream_forward(kup_upstream* upstream, const kup_request* request,
                                 const kup_forward_callbacks* callbacks, kup_forward** out, kup_error* err);
/** Streamed bodies: writes a piece; *writable (may be NULL) is 0 when the caller should wait for
 * on_writable before writing more. Errors: KUP_INVALID_ARGUMENT (not streamed, already ended),
 * KUP_OPERATION_CANCELED. */
KUP_API int kup_forward_write(kup_forward* request, const char* data, size_t len, int* writable, kup_error* err);
/** Ends a streamed body. */
KUP_API int kup_forward_end(kup_forward* request, kup_error* err);
/** Stops delivery of response body chunks (backpressure toward the Pod). NULL is ignored. */
KUP_API void kup_forward_pause(kup_forward* request);
/** Restarts delivery of response body chunks after kup_forward_pause(). NULL is ignored. */
KUP_API void kup_forward_resume(kup_forward* request);
/** Cancels if still running (no callback runs afterwards) and frees. Allowed inside any of its
 * own callbacks. NULL is ignored. */
KUP_API void kup_forward_destroy(kup_forward* request);

/* ------------------------------------------------------------------------------------------ */
/* Worker loops: one upstream, one loop per core.                                              */

/** Forwards an upstream's requests on another loop, one per thread (opaque; kup_upstream_worker,
 * kup_worker_destroy). The kup_upstream stays on its own (control) loop with discovery, weights,
 * health decisions and the picker; every worker loop gets a kup_worker with its own connection
 * pools, sharing the upstream's watches, picker, ejections and in-flight counts
 * (kupstream/upstream_worker.h; docs/bindings-c.md, "Worker loops").
 *
 * Threads: kup_worker_forward, kup_worker_destroy and the kup_forward functions of the worker's
 *   requests run on the worker loop's thread; their callbacks run there too. kup_worker_pick,
 *   kup_worker_picker and kup_worker_ready: any thread.
 * Lifetime: destroy each worker exactly once, on its loop's thread, at any time (also inside a
 *   callback of one of its requests): its requests are canceled (no callback runs afterwards), its
 *   pools and handles close, and its worker loop drains (uv_loop_close succeeds). The upstream may
 *   be destroyed first: the worker then fails new requests with KUP_OPERATION_CANCELED naming the
 *   upstream, kup_worker_pick finds no Pod and kup_worker_ready returns 0; the worker must still be
 *   destroyed on its loop. The kup_cluster must outlive the upstream, as always. */
typedef struct kup_worker kup_worker;

/** Creates a worker of `upstream` on `worker_loop`. Call it on worker_loop's thread (or before that
 * loop runs), while the upstream lives and not concurrently with kup_upstream_destroy; any number
 * of workers per loop and per upstream. Errors: KUP_INVALID_ARGUMENT (NULL pointers),
 * KUP_INVALID_CONFIG when a per-worker TLS context cannot be made (the reason names the field). */
KUP_API int kup_upstream_worker(kup_upstream* upstream, uv_loop_t* worker_loop, kup_worker** out, kup_error* err);
/** Worker loop thread: cancels its requests, closes its pools and frees it. NULL is ignored. */
KUP_API void kup_worker_destroy(kup_worker* worker);
/** Worker loop thread: kup_upstream_forward on the worker's loop, with the same request, callbacks
 * and errors; KUP_OPERATION_CANCELED once the upstream has been destroyed. The kup_forward belongs
 * to the worker's loop thread. */
KUP_API int kup_worker_forward(kup_worker* worker, const kup_request* request, const kup_forward_callbacks* callbacks,
                               kup_forward** out, kup_error* err);
/** Any thread: kup_upstream_pick through the worker. KUP_NO_ENDPOINT once the upstream is gone. */
KUP_API int kup_worker_pick(const kup_worker* worker, uint64_t hash, kup_pick_result* out, kup_error* err);
/** Any thread: the upstream's current picker as a new reference (an empty one once the upstream is
 * gone); NULL only when memory ran out or `worker` is NULL. */
KUP_API kup_picker* kup_worker_picker(const kup_worker* worker);
/** Any thread: nonzero while the upstream lives, has synced every service and has a Pod. */
KUP_API int kup_worker_ready(const kup_worker* worker);

#ifdef __cplusplus
}
#endif

#endif /* KUPSTREAM_KUPSTREAM_C_H */
