// TypeScript declarations for kupstream's Node.js addon. See README.md.
/// <reference types="node" />
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';

/** An Error from kupstream: `code` is `KUP_` + the kupstream::Errc name, e.g. `KUP_NO_ENDPOINT`. */
export interface KupstreamError extends Error {
  code: KupstreamErrorCode;
}

export type KupstreamErrorCode =
  | 'KUP_INVALID_ARGUMENT' | 'KUP_INVALID_CONFIG' | 'KUP_NO_ENDPOINT' | 'KUP_OPERATION_CANCELED'
  | 'KUP_TIMED_OUT' | 'KUP_CONNECT_FAILED' | 'KUP_CONNECTION_CLOSED' | 'KUP_TLS_HANDSHAKE_FAILED'
  | 'KUP_TLS_VERIFY_FAILED' | 'KUP_HTTP_PARSE_ERROR' | 'KUP_HTTP_LIMIT_EXCEEDED' | 'KUP_RESOLVE_FAILED'
  | 'KUP_POOL_EXHAUSTED' | 'KUP_UNAUTHORIZED' | 'KUP_FORBIDDEN' | 'KUP_NOT_FOUND' | 'KUP_GONE'
  | 'KUP_TOO_MANY_REQUESTS' | 'KUP_SERVER_ERROR' | 'KUP_DECODE_ERROR' | 'KUP_CREDENTIAL_ERROR'
  | 'KUP_UNSUPPORTED' | 'KUP_IO_ERROR' | 'KUP_INTERNAL';

/** Every code with its message. */
export const errorCodes: Record<KupstreamErrorCode, string>;

export type ClusterOptions =
  | { name: string; kubeconfig?: string; context?: string; inCluster?: false }
  | { name: string; inCluster: true; serviceAccountDir?: string };

export type LogLevel = 'debug' | 'info' | 'warning' | 'error';

/** One Kubernetes API server. Open, it keeps the process alive (see ref()/unref()). */
export class Cluster extends EventEmitter {
  /** @throws KupstreamError (KUP_IO_ERROR, KUP_INVALID_CONFIG, ...) naming the cluster and file. */
  constructor(options: ClusterOptions);
  readonly name: string;
  readonly closed: boolean;
  /** Releases the API connections once every Upstream using this cluster is closed. Idempotent. */
  close(): void;
  ref(): this;
  unref(): this;
  on(event: 'log', listener: (level: LogLevel, message: string) => void): this;
}

/** A ServiceRef, as in kup-gateway's config. */
export interface ServiceConfig {
  cluster: string;
  namespace: string;
  service: string;
  port: number | string;
  weight?: number;
  node_labels?: Record<string, string>;
}

/**
 * One upstream in kup-gateway's shape (docs/gateway.md, `upstreams[]`): every field is accepted
 * and checked by the library; unknown keys are errors.
 */
export interface UpstreamConfig {
  name: string;
  services: ServiceConfig[];
  [option: string]: unknown;
}

export interface Endpoint {
  address: string;
  port: number;
  pod: string;
  /** "cluster/namespace/service:port" */
  service: string;
}

export interface SnapshotEndpoint extends Endpoint {
  node: string;
  weight: number;
}

export interface Snapshot {
  upstream: string;
  ready: boolean;
  /** What the Upstream balances over now (its Picker), with effective weights. */
  endpoints: SnapshotEndpoint[];
  services: { service: string; phase: WatchPhase; generation: number; ready: number; draining: number }[];
}

export type WatchPhase = 'syncing' | 'synced' | 'stale' | 'forbidden' | 'not_found';

export interface WatchState {
  service: string;
  phase: WatchPhase;
  reason: string;
  since: Date;
  generation: number;
  resourceVersion: string;
}

export type Headers =
  | Record<string, string | number | string[] | undefined>
  | Iterable<[string, string]>
  | string[];

export interface RequestOptions {
  method?: string;
  /** Origin-form path and query. Default "/". */
  path?: string;
  /** An object, pairs, or a flat rawHeaders list. Hop-by-hop headers are dropped; Host is overridden. */
  headers?: Headers;
  body?: string | Buffer | Uint8Array;
  /** X-Forwarded-For / -Host / -Proto come from these. */
  clientAddress?: string;
  clientHost?: string;
  clientScheme?: string;
  /** consistent_hash key; default: the value of the upstream's `hash_header`. */
  hashKey?: string | number;
}

export class UpstreamResponse<B = Buffer> {
  readonly status: number;
  /** Lower-case names, repeated values joined with ", " (set-cookie: an array). */
  readonly headers: Record<string, string | string[]>;
  /** [name, value, name, value, ...] as received (hop-by-hop headers removed). */
  readonly rawHeaders: string[];
  readonly body: B;
  /** "address:port" of the Pod that answered. */
  readonly pod: string;
  readonly attempts: number;
  text(): string;
  json(): any;
}

export interface UpstreamStats {
  upstream: string;
  requests: number;
  failures: number;
  retries: number;
  noEndpoint: number;
  inFlight: number;
  panic: boolean;
  usingDraining: boolean;
  latencySumSeconds: number;
  latency: { le: number; count: number }[];
  pods: { pod: string; podName: string; service: string; weight: number; ejected: boolean; draining: boolean;
    requests: number; failures: number; ejections: number; inFlight: number; zone: string }[];
  services: (WatchState & { stalenessMs: number; ready: number; draining: number })[];
  /** Zone-aware routing (the config's `locality` block); mode 'off' when it is not enabled. */
  locality: LocalityStats;
}

/** Zone-aware routing as an Upstream applies it (docs/upstream.md, "Zone-aware routing"). */
export interface LocalityStats {
  enabled: boolean;
  /** This host's zone ('' when not enabled). */
  zone: string;
  /** What the current picker does. */
  mode: 'off' | 'local' | 'spill' | 'everywhere';
  /** Zones come from EndpointSlice hints (kube-proxy's rules held). */
  hints: boolean;
  /** Why this mode, e.g. '1 healthy endpoint < min_endpoints 6'. */
  reason: string;
  /** Share of new requests the current picker keeps in the local zone (0..1). */
  localShare: number;
  /** Attempts sent to local-zone Pods, and to Pods of other or unknown zones, since creation. */
  localRequests: number;
  crossZoneRequests: number;
  /** The local zone first, then by name; shares are 0..1. */
  zones: { zone: string; endpoints: number; healthy: number; trafficStart: number; capacity: number;
    routed: number }[];
}

/** A named set of Kubernetes Service ports; requests go straight to their Pods. */
export class Upstream extends EventEmitter {
  /**
   * @param config an object in kup-gateway's upstream shape, or the same as YAML/JSON text.
   * @param options.clusters the Clusters named by `services[].cluster`: an array (by cluster.name),
   *   an object or a Map (by key).
   * @throws KupstreamError KUP_INVALID_CONFIG naming the field (`services[0].namespace: ...`).
   */
  constructor(config: UpstreamConfig | string,
              options: { clusters: Cluster[] | Record<string, Cluster> | Map<string, Cluster> | Cluster });
  readonly name: string;
  readonly ready: boolean;
  readonly closed: boolean;
  /** The `hash_header` of a consistent_hash upstream, else "". */
  readonly hashHeader: string;
  /** A Pod for your own transport. @throws KupstreamError KUP_NO_ENDPOINT naming the upstream. */
  pick(hashKey?: string | number | bigint): Endpoint;
  /** Through kupstream's pools, timeouts and retries; the whole body in one Buffer. */
  request(options?: RequestOptions): Promise<UpstreamResponse<Buffer>>;
  /** As request(), resolved at the response head; the body streams with backpressure. */
  stream(options?: RequestOptions): Promise<UpstreamResponse<Readable>>;
  /** The current snapshot (what 'change' carries); null once closed. */
  snapshot(): Snapshot | null;
  stats(): UpstreamStats | null;
  /** Prometheus text exposition (kupstream_* metrics labelled upstream="name"). */
  metrics(): string;
  /** Cancels requests in flight (KUP_OPERATION_CANCELED) and stops events. Idempotent; allowed in handlers. */
  close(): void;
  ref(): this;
  unref(): this;
  on(event: 'change', listener: (snapshot: Snapshot) => void): this;
  on(event: 'state', listener: (state: WatchState) => void): this;
  on(event: 'log', listener: (level: LogLevel, message: string) => void): this;
}
