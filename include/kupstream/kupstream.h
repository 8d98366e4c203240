/// @file
/// The umbrella header: everything public in kupstream.
#pragma once

#include "kupstream/balancer.h"
#include "kupstream/cluster.h"
#include "kupstream/cluster_client.h"
#include "kupstream/endpoint.h"
#include "kupstream/endpoint_watcher.h"
#include "kupstream/error.h"
#include "kupstream/export.h"
#include "kupstream/log.h"
#include "kupstream/service_ref.h"
#include "kupstream/upstream.h"
#include "kupstream/upstream_config.h"
#include "kupstream/upstream_document.h"
#include "kupstream/upstream_worker.h"
#include "kupstream/version.h"
