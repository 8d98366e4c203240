#!/usr/bin/env python3
# The private-range IP literals here are values to store and compare: addresses are data only (nothing connects to them).
"""kubesim: a small Kubernetes API server simulator for tests (standard library only).

It serves namespaces, services, endpointslices and nodes over HTTPS with bearer tokens,
list/watch with resourceVersions, bookmarks, paging and selectors, and an admin API
(/kubesim/admin/...) to seed objects and inject faults. See docs/kubesim.md.

Written from the Kubernetes API conventions and real wire samples; it shares no code
with the kupstream client it tests.
"""

import argparse
import base64
import copy
import http
import ipaddress
import json
import math
import os
import random
import re
import secrets
import select
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LIST_CHUNK_THRESHOLD = 2048  # bodies up to this size get Content-Length, larger ones are chunked
ADMIN_PREFIX = "/kubesim/admin"


# ----------------------------------------------------------------------------------------------
# Resource types


class ResourceType:
    def __init__(self, plural, singular, kind, group, version, namespaced, short_names,
                 has_generation):
        self.plural = plural
        self.singular = singular
        self.kind = kind
        self.group = group
        self.version = version
        self.namespaced = namespaced
        self.short_names = short_names
        self.has_generation = has_generation

    @property
    def api_version(self):
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self):
        """Name used in messages: 'endpointslices.discovery.k8s.io' or 'services'."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def details(self, name=None):
        d = {}
        if name:
            d["name"] = name
        if self.group:
            d["group"] = self.group
        d["kind"] = self.plural
        return d


RESOURCES = {
    "namespaces": ResourceType("namespaces", "namespace", "Namespace", "", "v1", False, ["ns"], False),
    "services": ResourceType("services", "service", "Service", "", "v1", True, ["svc"], True),
    "nodes": ResourceType("nodes", "node", "Node", "", "v1", False, ["no"], False),
    "endpointslices": ResourceType("endpointslices", "endpointslice", "EndpointSlice",
                                   "discovery.k8s.io", "v1", True, [], True),
}
KIND_TO_RESOURCE = {rt.kind: rt for rt in RESOURCES.values()}
STANDARD_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


# ----------------------------------------------------------------------------------------------
# Helpers


class ApiError(Exception):
    """An error answered as a metav1.Status body."""

    def __init__(self, code, reason, message, details=None, metadata=None, headers=None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.metadata = metadata
        self.headers = headers or []

    def status(self):
        return make_status(self.code, self.reason, self.message, self.details, self.metadata)


def make_status(code, reason, message, details=None, metadata=None):
    st = {"kind": "Status", "apiVersion": "v1", "metadata": metadata or {}, "status": "Failure",
          "message": message, "reason": reason}
    if details is not None:
        st["details"] = details
    st["code"] = code
    return st


def go_json(obj, pretty=False):
    """Encode like Go's encoding/json (HTML characters escaped); compact output ends with \\n."""
    if pretty:
        text = json.dumps(obj, indent=2, ensure_ascii=False)
    else:
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n"
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode("utf-8")


def now_ts():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def parse_ts(ts):
    try:
        return time.mktime(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")) - time.mktime(time.gmtime(0))
    except (TypeError, ValueError):
        return None


def human_duration(seconds):
    """Age formatting as kubectl shows it (k8s duration.HumanDuration)."""
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        sec = s % 60
        return f"{minutes}m" if sec == 0 else f"{minutes}m{sec}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        return f"{hours // 24 // 365}y" if dy == 0 else f"{hours // 24 // 365}y{dy}d"
    return f"{hours // 24 // 365}y"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text):
    pad = "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(text + pad)


# ----------------------------------------------------------------------------------------------
# Validation primitives (rules of the Kubernetes API; messages written for kubesim)

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
QUALIFIED_NAME_PART = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def q(value):
    return json.dumps(value, ensure_ascii=False)


class FieldErrors:
    """Collects field errors and renders them like apimachinery's field.ErrorList."""

    def __init__(self):
        self.items = []  # (reason, field, text)

    def add(self, reason, field, text):
        self.items.append((reason, field, text))

    def required(self, field, detail=""):
        self.add("FieldValueRequired", field, "Required value" + (f": {detail}" if detail else ""))

    def invalid(self, field, value, detail):
        shown = q(value) if isinstance(value, str) else json.dumps(value)
        self.add("FieldValueInvalid", field, f"Invalid value: {shown}: {detail}")

    def not_supported(self, field, value, supported):
        shown = q(value) if isinstance(value, str) else json.dumps(value)
        allowed = ", ".join(q(s) for s in supported)
        self.add("FieldValueNotSupported", field, f"Unsupported value: {shown}: supported values: {allowed}")

    def duplicate(self, field, value):
        shown = q(value) if isinstance(value, str) else json.dumps(value)
        self.add("FieldValueDuplicate", field, f"Duplicate value: {shown}")

    def forbidden(self, field, detail):
        self.add("FieldValueForbidden", field, f"Forbidden: {detail}")

    def too_many(self, field, count, limit):
        self.add("FieldValueTooMany", field, f"Too many: {count}: must have at most {limit} items")

    def raise_if_any(self, rt, name):
        if not self.items:
            return
        parts = [f"{f}: {t}" for (_, f, t) in self.items]
        joined = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
        kind = f"{rt.kind}.{rt.group}" if rt.group else rt.kind
        causes = [{"reason": r, "message": t, "field": f} for (r, f, t) in self.items]
        details = {"name": name} if name else {}
        if rt.group:
            details["group"] = rt.group
        details["kind"] = rt.kind
        details["causes"] = causes
        raise ApiError(422, "Invalid", f"{kind} {q(name or '')} is invalid: {joined}", details)


def check_dns1123_label(errs, field, value):
    if len(value) > 63:
        errs.invalid(field, value, "must be no more than 63 characters")
    if not DNS1123_LABEL.match(value):
        errs.invalid(field, value, "a lowercase RFC 1123 label must consist of lower case alphanumeric "
                     "characters or '-', and must start and end with an alphanumeric character")


def check_dns1123_subdomain(errs, field, value):
    if len(value) > 253:
        errs.invalid(field, value, "must be no more than 253 characters")
    if not DNS1123_SUBDOMAIN.match(value):
        errs.invalid(field, value, "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                     "characters, '-' or '.', and must start and end with an alphanumeric character")


def check_dns1035_label(errs, field, value):
    if len(value) > 63:
        errs.invalid(field, value, "must be no more than 63 characters")
    if not DNS1035_LABEL.match(value):
        errs.invalid(field, value, "a DNS-1035 label must consist of lower case alphanumeric characters or "
                     "'-', start with an alphabetic character, and end with an alphanumeric character")


def qualified_name_problem(value):
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return "prefix part must be non-empty"
        if len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix):
            return "prefix part must be a lowercase RFC 1123 subdomain"
    else:
        return "a qualified name must consist of alphanumeric characters, '-', '_' or '.', with an " \
               "optional DNS subdomain prefix and '/'"
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    if not QUALIFIED_NAME_PART.match(name):
        return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start " \
               "and end with an alphanumeric character"
    return None


def label_value_problem(value):
    if len(value) > 63:
        return "must be no more than 63 characters"
    if not LABEL_VALUE.match(value):
        return "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' " \
               "or '.', and must start and end with an alphanumeric character"
    return None


def check_labels(errs, field, labels):
    for k, v in (labels or {}).items():
        p = qualified_name_problem(k)
        if p:
            errs.invalid(field, k, p)
        p = label_value_problem(v)
        if p:
            errs.invalid(f"{field}", v, p)


def iana_svc_name_problem(value):
    if len(value) > 15:
        return "must be no more than 15 characters"
    if not re.match(r"^[-a-z0-9]+$", value):
        return "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"
    if not re.search(r"[a-z]", value):
        return "must contain at least one letter (a-z)"
    if "--" in value:
        return "must not contain consecutive hyphens"
    if value.startswith("-") or value.endswith("-"):
        return "must not begin or end with a hyphen"
    return None


def endpoint_ip_problem(ip):
    """Special ranges the real server refuses for endpoint addresses. Loopback is accepted on
    purpose (kubesim's one deliberate deviation) so tests can reach Pods on this machine."""
    if ip.is_unspecified:
        return "may not be unspecified (0.0.0.0, ::)"
    if ip.is_link_local:
        return "may not be in the link-local range (169.254.0.0/16, fe80::/10)"
    if isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("224.0.0.0/24"):
        return "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"
    if isinstance(ip, ipaddress.IPv6Address) and ip in ipaddress.ip_network("ff02::/16"):
        return "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"
    return None


# ---- decoding type checks (the real server answers 400 when JSON does not fit the Go types)

def _json_type(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return "null"


class Decoder:
    def __init__(self, rt):
        self.rt = rt

    def fail(self, value, gofield, gotype):
        kind = self.rt.kind
        raise ApiError(400, "BadRequest",
                       f"{kind} in version \"{self.rt.version}\" cannot be handled as a {kind}: json: cannot "
                       f"unmarshal {_json_type(value)} into Go struct field {gofield} of type {gotype}")

    def expect(self, value, pytypes, gofield, gotype, nullable=True):
        if value is None and nullable:
            return
        if isinstance(value, bool) and bool not in pytypes:
            self.fail(value, gofield, gotype)
        if not isinstance(value, pytypes):
            self.fail(value, gofield, gotype)
        if int in pytypes and isinstance(value, float) and not value.is_integer():
            self.fail(value, gofield, gotype)

    def string_map(self, value, gofield):
        self.expect(value, (dict,), gofield, "map[string]string")
        for v in (value or {}).values():
            self.expect(v, (str,), gofield, "string", nullable=False)


def decode_common(dec, obj):
    if not isinstance(obj, dict):
        raise ApiError(400, "BadRequest", "the body of the request was in an unknown format - accepted "
                       "media types include: application/json, application/yaml")
    md = obj.get("metadata")
    dec.expect(md, (dict,), f"{dec.rt.kind}.metadata", "v1.ObjectMeta")
    md = md or {}
    for f in ("name", "generateName", "namespace", "resourceVersion", "uid"):
        dec.expect(md.get(f), (str,), f"{dec.rt.kind}.metadata.{f}", "string")
    dec.string_map(md.get("labels"), f"{dec.rt.kind}.metadata.labels")
    dec.string_map(md.get("annotations"), f"{dec.rt.kind}.metadata.annotations")


# ----------------------------------------------------------------------------------------------
# Per-kind defaulting, validation and printing


def order_keys(d, order):
    if not isinstance(d, dict):
        return d
    out = {k: d[k] for k in order if k in d}
    for k, v in d.items():
        if k not in out:
            out[k] = v
    return out


META_ORDER = ["name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
              "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
              "annotations", "ownerReferences", "finalizers", "managedFields"]


class EndpointSliceKind:
    ADDRESS_TYPES = ["IPv4", "IPv6", "FQDN"]

    @staticmethod
    def decode(dec, obj):
        dec.expect(obj.get("addressType"), (str,), "EndpointSlice.addressType", "v1.AddressType")
        dec.expect(obj.get("endpoints"), (list,), "EndpointSlice.endpoints", "[]v1.Endpoint")
        dec.expect(obj.get("ports"), (list,), "EndpointSlice.ports", "[]v1.EndpointPort")
        for ep in obj.get("endpoints") or []:
            dec.expect(ep, (dict,), "EndpointSlice.endpoints", "v1.Endpoint", nullable=False)
            dec.expect(ep.get("addresses"), (list,), "Endpoint.endpoints.addresses", "[]string")
            for a in ep.get("addresses") or []:
                dec.expect(a, (str,), "Endpoint.endpoints.addresses", "string", nullable=False)
            cond = ep.get("conditions")
            dec.expect(cond, (dict,), "Endpoint.endpoints.conditions", "v1.EndpointConditions")
            for c in ("ready", "serving", "terminating"):
                dec.expect((cond or {}).get(c), (bool,), f"EndpointConditions.endpoints.conditions.{c}", "bool")
            for f in ("hostname", "nodeName", "zone"):
                dec.expect(ep.get(f), (str,), f"Endpoint.endpoints.{f}", "string")
        for p in obj.get("ports") or []:
            dec.expect(p, (dict,), "EndpointSlice.ports", "v1.EndpointPort", nullable=False)
            dec.expect(p.get("port"), (int,), "EndpointPort.ports.port", "int32")
            dec.expect(p.get("name"), (str,), "EndpointPort.ports.name", "string")
            dec.expect(p.get("protocol"), (str,), "EndpointPort.ports.protocol", "v1.Protocol")
            dec.expect(p.get("appProtocol"), (str,), "EndpointPort.ports.appProtocol", "string")

    @staticmethod
    def default(obj, old, store=None):
        for p in obj.get("ports") or []:
            if p.get("name") is None:
                p["name"] = ""
            if p.get("protocol") is None:
                p["protocol"] = "TCP"
        # endpoints is not omitempty in the real type: it is always present, null when empty
        eps = obj.get("endpoints")
        obj["endpoints"] = None if eps is None else [
            order_keys(e, ["addresses", "conditions", "hostname", "targetRef", "nodeName", "zone", "hints",
                           "deprecatedTopology"]) for e in eps]
        if obj.get("ports") is not None:
            obj["ports"] = [order_keys(p, ["name", "protocol", "port", "appProtocol"]) for p in obj["ports"]]

    @staticmethod
    def validate(errs, obj, old):
        name = obj["metadata"].get("name", "")
        if name:
            check_dns1123_subdomain(errs, "metadata.name", name)
        at = obj.get("addressType")
        if not at:
            errs.required("addressType")
        elif old is not None and old.get("addressType") != at:
            errs.invalid("addressType", at, "field is immutable")
        elif at not in EndpointSliceKind.ADDRESS_TYPES and not (old is not None and at == "IP"):
            errs.not_supported("addressType", at, EndpointSliceKind.ADDRESS_TYPES)
        eps = obj.get("endpoints") or []
        if len(eps) > 1000:
            errs.too_many("endpoints", len(eps), 1000)
        for i, ep in enumerate(eps):
            path = f"endpoints[{i}]"
            addrs = ep.get("addresses") or []
            if not addrs:
                errs.required(f"{path}.addresses", "must contain at least 1 address")
            elif len(addrs) > 100:
                errs.too_many(f"{path}.addresses", len(addrs), 100)
            for j, a in enumerate(addrs):
                ap = f"{path}.addresses[{j}]"
                if at == "IPv4":
                    try:
                        ip = ipaddress.IPv4Address(a)
                    except ValueError:
                        errs.invalid(ap, a, "must be a valid IPv4 address")
                        continue
                    p = endpoint_ip_problem(ip)
                    if p:
                        errs.invalid(ap, a, p)
                elif at == "IPv6":
                    try:
                        ip = ipaddress.IPv6Address(a)
                    except ValueError:
                        errs.invalid(ap, a, "must be a valid IPv6 address")
                        continue
                    p = endpoint_ip_problem(ip)
                    if p:
                        errs.invalid(ap, a, p)
                elif at == "FQDN":
                    if "." not in a.strip("."):
                        errs.invalid(ap, a, "should be a domain with at least two segments separated by dots")
                    else:
                        check_dns1123_subdomain(errs, ap, a.rstrip("."))
            if ep.get("hostname"):
                check_dns1123_label(errs, f"{path}.hostname", ep["hostname"])
            if ep.get("nodeName"):
                check_dns1123_subdomain(errs, f"{path}.nodeName", ep["nodeName"])
        ports = obj.get("ports") or []
        if len(ports) > 100:
            errs.too_many("ports", len(ports), 100)
        seen = set()
        for i, p in enumerate(ports):
            path = f"ports[{i}]"
            pname = p.get("name") or ""
            if pname:
                check_dns1123_label(errs, f"{path}.name", pname)
            if pname in seen:
                errs.duplicate(f"{path}.name", pname)
            seen.add(pname)
            if p.get("protocol") not in ("TCP", "UDP", "SCTP"):
                errs.not_supported(f"{path}.protocol", p.get("protocol"), ["SCTP", "TCP", "UDP"])
            port = p.get("port")
            if port is not None and not (1 <= port <= 65535):
                errs.invalid(f"{path}.port", port, "must be between 1 and 65535, inclusive")
            if p.get("appProtocol"):
                prob = qualified_name_problem(p["appProtocol"])
                if prob:
                    errs.invalid(f"{path}.appProtocol", p["appProtocol"], prob)

    @staticmethod
    def spec_changed(new, old):
        strip = lambda o: {k: v for k, v in o.items() if k not in ("metadata", "kind", "apiVersion")}
        return strip(new) != strip(old) or (new["metadata"].get("labels") != old["metadata"].get("labels"))

    COLUMNS = [("Name", "string", "name", "Name of the EndpointSlice", 0),
               ("AddressType", "string", "", "Type of the addresses in this slice", 0),
               ("Ports", "string", "", "Port numbers of this slice", 0),
               ("Endpoints", "string", "", "Addresses of the endpoints in this slice", 0),
               ("Age", "string", "", "Time since creation", 0)]

    @staticmethod
    def cells(obj, now):
        ports = obj.get("ports") or []
        plist = []
        for p in ports[:3]:
            if p.get("port") is not None:
                plist.append(str(p["port"]))
            elif p.get("name"):
                plist.append(p["name"])
            else:
                plist.append("*")
        pstr = ",".join(plist) if plist else "<unset>"
        if len(ports) > 3:
            pstr += f" + {len(ports) - 3} more..."
        addrs = [a for ep in (obj.get("endpoints") or []) for a in (ep.get("addresses") or [])]
        estr = ",".join(addrs[:3]) if addrs else "<unset>"
        if len(addrs) > 3:
            estr += f" + {len(addrs) - 3} more..."
        return [obj["metadata"]["name"], obj.get("addressType", ""), pstr, estr, age_of(obj, now)]


def age_of(obj, now):
    t = parse_ts(obj["metadata"].get("creationTimestamp"))
    return "<unknown>" if t is None else human_duration(now - t)


class ServiceKind:
    TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]

    @staticmethod
    def decode(dec, obj):
        spec = obj.get("spec")
        dec.expect(spec, (dict,), "Service.spec", "v1.ServiceSpec")
        spec = spec or {}
        dec.expect(spec.get("ports"), (list,), "ServiceSpec.spec.ports", "[]v1.ServicePort")
        dec.string_map(spec.get("selector"), "ServiceSpec.spec.selector")
        dec.expect(spec.get("type"), (str,), "ServiceSpec.spec.type", "v1.ServiceType")
        dec.expect(spec.get("clusterIP"), (str,), "ServiceSpec.spec.clusterIP", "string")
        for p in spec.get("ports") or []:
            dec.expect(p, (dict,), "ServiceSpec.spec.ports", "v1.ServicePort", nullable=False)
            dec.expect(p.get("port"), (int,), "ServicePort.spec.ports.port", "int32")
            dec.expect(p.get("nodePort"), (int,), "ServicePort.spec.ports.nodePort", "int32")
            dec.expect(p.get("name"), (str,), "ServicePort.spec.ports.name", "string")
            dec.expect(p.get("protocol"), (str,), "ServicePort.spec.ports.protocol", "v1.Protocol")
            dec.expect(p.get("targetPort"), (int, str), "ServicePort.spec.ports.targetPort",
                       "intstr.IntOrString")

    @staticmethod
    def default(obj, old, store=None):
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        t = spec["type"]
        for p in spec.get("ports") or []:
            p.setdefault("protocol", "TCP")
            if p.get("targetPort") in (None, 0, ""):
                p["targetPort"] = p.get("port")
        if old is not None:
            ospec = old.get("spec", {})
            if not spec.get("clusterIP") and ospec.get("clusterIP"):
                spec["clusterIP"] = ospec["clusterIP"]
                spec["clusterIPs"] = ospec.get("clusterIPs", [ospec["clusterIP"]])
            oldnp = {(p.get("port"), p.get("protocol")): p.get("nodePort") for p in ospec.get("ports") or []}
            for p in spec.get("ports") or []:
                if not p.get("nodePort") and oldnp.get((p.get("port"), p.get("protocol"))):
                    p["nodePort"] = oldnp[(p.get("port"), p.get("protocol"))]
        if t != "ExternalName":
            if not spec.get("clusterIP"):
                spec["clusterIP"] = store.allocate_cluster_ip() if store else "10.96.0.10"
            if spec["clusterIP"] != "None":
                spec.setdefault("clusterIPs", [spec["clusterIP"]])
            else:
                spec.setdefault("clusterIPs", ["None"])
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        if t in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
            for p in spec.get("ports") or []:
                if not p.get("nodePort"):
                    p["nodePort"] = random.randint(30000, 32767)
        if t == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        if spec.get("ports") is not None:
            spec["ports"] = [order_keys(p, ["name", "protocol", "appProtocol", "port", "targetPort", "nodePort"])
                             for p in spec["ports"]]
        obj["spec"] = order_keys(spec, ["ports", "selector", "clusterIP", "clusterIPs", "type", "externalIPs",
                                        "sessionAffinity", "loadBalancerIP", "loadBalancerSourceRanges",
                                        "externalName", "externalTrafficPolicy", "healthCheckNodePort",
                                        "publishNotReadyAddresses", "sessionAffinityConfig", "ipFamilies",
                                        "ipFamilyPolicy", "allocateLoadBalancerNodePorts",
                                        "loadBalancerClass", "internalTrafficPolicy"])
        if spec.get("selector"):
            spec["selector"] = dict(sorted(spec["selector"].items()))
        if old is not None:
            obj["status"] = old.get("status", {"loadBalancer": {}})
        else:
            obj["status"] = {"loadBalancer": {}}

    @staticmethod
    def validate(errs, obj, old):
        name = obj["metadata"].get("name", "")
        if name:
            check_dns1035_label(errs, "metadata.name", name)
        spec = obj.get("spec", {})
        t = spec.get("type")
        if t not in ServiceKind.TYPES:
            errs.not_supported("spec.type", t, ServiceKind.TYPES)
        ports = spec.get("ports") or []
        cip = spec.get("clusterIP")
        if t == "ExternalName":
            if not spec.get("externalName"):
                errs.required("spec.externalName")
            else:
                check_dns1123_subdomain(errs, "spec.externalName", spec["externalName"].rstrip("."))
        elif not ports and cip != "None":
            errs.required("spec.ports")
        if cip not in (None, "", "None"):
            try:
                ipaddress.ip_address(cip)
            except ValueError:
                errs.invalid("spec.clusterIPs[0]", cip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")
        if old is not None:
            ocip = old.get("spec", {}).get("clusterIP")
            if ocip and cip != ocip and t != "ExternalName":
                errs.invalid("spec.clusterIPs[0]", cip, "may not change once set")
        names = set()
        keys = set()
        for i, p in enumerate(ports):
            path = f"spec.ports[{i}]"
            pname = p.get("name") or ""
            if len(ports) > 1 and not pname:
                errs.required(f"{path}.name")
            if pname:
                check_dns1123_label(errs, f"{path}.name", pname)
                if pname in names:
                    errs.duplicate(f"{path}.name", pname)
                names.add(pname)
            port = p.get("port")
            if port is None or not (1 <= port <= 65535):
                errs.invalid(f"{path}.port", port or 0, "must be between 1 and 65535, inclusive")
            proto = p.get("protocol")
            if proto not in ("TCP", "UDP", "SCTP"):
                errs.not_supported(f"{path}.protocol", proto, ["SCTP", "TCP", "UDP"])
            key = (port, proto)
            if key in keys:
                errs.duplicate(f"{path}", f"{port}/{proto}")
            keys.add(key)
            tp = p.get("targetPort")
            if isinstance(tp, int):
                if not (1 <= tp <= 65535):
                    errs.invalid(f"{path}.targetPort", tp, "must be between 1 and 65535, inclusive")
            elif isinstance(tp, str):
                prob = iana_svc_name_problem(tp)
                if prob:
                    errs.invalid(f"{path}.targetPort", tp, prob)
            np = p.get("nodePort")
            if np and t not in ("NodePort", "LoadBalancer"):
                errs.forbidden(f"{path}.nodePort", f"may not be used when `type` is '{t}'")
            elif np and not (30000 <= np <= 32767):
                errs.invalid(f"{path}.nodePort", np, "provided port is not in the valid range. "
                             "The range of valid ports is 30000-32767")
        check_labels(errs, "spec.selector", spec.get("selector"))

    @staticmethod
    def spec_changed(new, old):
        return new.get("spec") != old.get("spec")

    COLUMNS = [("Name", "string", "name", "Name of the Service", 0),
               ("Type", "string", "", "Type of the Service", 0),
               ("Cluster-IP", "string", "", "Cluster IP of the Service", 0),
               ("External-IP", "string", "", "External addresses of the Service", 0),
               ("Port(s)", "string", "", "Ports of the Service", 0),
               ("Age", "string", "", "Time since creation", 0),
               ("Selector", "string", "", "Label selector of the Service", 1)]

    @staticmethod
    def cells(obj, now):
        spec = obj.get("spec", {})
        t = spec.get("type", "ClusterIP")
        cip = spec.get("clusterIP") or "<none>"
        if t == "ExternalName":
            ext = spec.get("externalName") or "<none>"
        elif t == "LoadBalancer":
            ing = [i.get("ip") or i.get("hostname") for i in
                   (obj.get("status", {}).get("loadBalancer", {}).get("ingress") or [])]
            ext = ",".join(ing + list(spec.get("externalIPs") or [])) or "<pending>"
        else:
            ext = ",".join(spec.get("externalIPs") or []) or "<none>"
        parts = []
        for p in spec.get("ports") or []:
            if p.get("nodePort"):
                parts.append(f"{p.get('port')}:{p['nodePort']}/{p.get('protocol', 'TCP')}")
            else:
                parts.append(f"{p.get('port')}/{p.get('protocol', 'TCP')}")
        sel = spec.get("selector") or {}
        selstr = ",".join(f"{k}={sel[k]}" for k in sorted(sel)) or "<none>"
        return [obj["metadata"]["name"], t, cip, ext, ",".join(parts) or "<none>", age_of(obj, now), selstr]


class NodeKind:
    @staticmethod
    def decode(dec, obj):
        dec.expect(obj.get("spec"), (dict,), "Node.spec", "v1.NodeSpec")
        st = obj.get("status")
        dec.expect(st, (dict,), "Node.status", "v1.NodeStatus")
        dec.expect((st or {}).get("addresses"), (list,), "NodeStatus.status.addresses", "[]v1.NodeAddress")
        dec.expect((st or {}).get("conditions"), (list,), "NodeStatus.status.conditions", "[]v1.NodeCondition")

    @staticmethod
    def default(obj, old, store=None):
        obj.setdefault("spec", {})
        if old is not None and "status" not in obj:
            obj["status"] = old.get("status", {})
        obj.setdefault("status", {})

    @staticmethod
    def validate(errs, obj, old):
        name = obj["metadata"].get("name", "")
        if name:
            check_dns1123_subdomain(errs, "metadata.name", name)
        cidr = obj.get("spec", {}).get("podCIDR")
        if cidr:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                errs.invalid("spec.podCIDR", cidr, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")

    @staticmethod
    def spec_changed(new, old):
        return False

    COLUMNS = [("Name", "string", "name", "Name of the Node", 0),
               ("Status", "string", "", "Readiness of the Node", 0),
               ("Roles", "string", "", "Roles of the Node", 0),
               ("Age", "string", "", "Time since creation", 0),
               ("Version", "string", "", "Kubelet version", 0),
               ("Internal-IP", "string", "", "Internal address", 1),
               ("External-IP", "string", "", "External address", 1),
               ("OS-Image", "string", "", "OS image", 1),
               ("Kernel-Version", "string", "", "Kernel version", 1),
               ("Container-Runtime", "string", "", "Container runtime", 1)]

    @staticmethod
    def cells(obj, now):
        st = obj.get("status", {})
        ready = "Unknown"
        for c in st.get("conditions") or []:
            if c.get("type") == "Ready":
                ready = "Ready" if c.get("status") == "True" else "NotReady"
        if obj.get("spec", {}).get("unschedulable"):
            ready += ",SchedulingDisabled"
        labels = obj["metadata"].get("labels") or {}
        roles = sorted(k[len("node-role.kubernetes.io/"):] for k in labels if k.startswith("node-role.kubernetes.io/"))
        info = st.get("nodeInfo") or {}

        def addr(kind):
            for a in st.get("addresses") or []:
                if a.get("type") == kind:
                    return a.get("address")
            return "<none>"
        return [obj["metadata"]["name"], ready, ",".join(roles) or "<none>", age_of(obj, now),
                info.get("kubeletVersion", ""), addr("InternalIP"), addr("ExternalIP"),
                info.get("osImage") or "<unknown>", info.get("kernelVersion") or "<unknown>",
                info.get("containerRuntimeVersion") or "<unknown>"]


class NamespaceKind:
    @staticmethod
    def decode(dec, obj):
        dec.expect(obj.get("spec"), (dict,), "Namespace.spec", "v1.NamespaceSpec")

    @staticmethod
    def default(obj, old, store=None):
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
        obj["status"] = (old or {}).get("status", {"phase": "Active"})
        labels = obj["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = obj["metadata"].get("name", "")

    @staticmethod
    def validate(errs, obj, old):
        name = obj["metadata"].get("name", "")
        if name:
            check_dns1123_label(errs, "metadata.name", name)

    @staticmethod
    def spec_changed(new, old):
        return False

    COLUMNS = [("Name", "string", "name", "Name of the Namespace", 0),
               ("Status", "string", "", "Phase of the Namespace", 0),
               ("Age", "string", "", "Time since creation", 0)]

    @staticmethod
    def cells(obj, now):
        return [obj["metadata"]["name"], obj.get("status", {}).get("phase", ""), age_of(obj, now)]


KINDS = {"endpointslices": EndpointSliceKind, "services": ServiceKind, "nodes": NodeKind,
         "namespaces": NamespaceKind}
TOP_ORDER = ["kind", "apiVersion", "metadata", "addressType", "endpoints", "ports", "spec", "status"]


# ----------------------------------------------------------------------------------------------
# Selectors


# The label selector grammar of the real API server (apimachinery labels.Parse), written here
# from its rules:
#   selector    := requirement ("," requirement)*          (an empty string selects everything)
#   requirement := ["!"] KEY [ op VALUE | ("in"|"notin") "(" [VALUE] ("," [VALUE])* ")" ]
#   op          := "=" | "==" | "!=" | ">" | "<"
# Tokens: whitespace (space, tab, CR, LF) separates and is skipped; the symbols = ! ( ) , > <
# form operators ("!=" and "==" are one token, the longest that is an operator); any other run
# of characters is an identifier, except that "in" and "notin" are keywords in the operator
# position (they are plain values inside a value list or after "="). A bare KEY means "exists",
# !KEY "does not exist". A missing value (k=, "in ()", "(a,)", "(,a)", "(a,,b)") is the empty
# string, which is a valid label value; "in" and "notin" with no value at all cannot happen.
# Every key must be a valid qualified name and every value a valid label value; > and < take
# one integer. Errors are 400 BadRequest "unable to parse requirement: ..." as the server says.

SEL_SYMBOLS = "=!(),<>"
SEL_SPACE = " \t\r\n"
SEL_OPERATORS = {"=", "==", "!=", ">", "<", "in", "notin"}


def _selector_tokens(text):
    """Splits a selector into (kind, literal) tokens: 'id', 'op' (symbol operators and
    parentheses/commas), 'end'. A run of symbols that is no operator is an 'error' token."""
    out, i, n = [], 0, len(text)
    while True:
        while i < n and text[i] in SEL_SPACE:
            i += 1
        if i >= n:
            out.append(("end", ""))
            return out
        if text[i] in SEL_SYMBOLS:
            # the longest prefix of this run of symbols that is a token
            j, best = i, None
            while j < n and text[j] in SEL_SYMBOLS:
                j += 1
                cand = text[i:j]
                if cand in ("=", "==", "!=", "!", "(", ")", ",", ">", "<"):
                    best = cand
                elif best is not None:
                    break
            if best is None:
                out.append(("error", f"error expected: keyword found '{text[i:j]}'"))
                i = j
                continue
            out.append(("op", best))
            i += len(best)
            continue
        j = i
        while j < n and text[j] not in SEL_SYMBOLS and text[j] not in SEL_SPACE:
            j += 1
        word = text[i:j]
        out.append(("kw" if word in ("in", "notin") else "id", word))
        i = j


class LabelSelector:
    """A parsed label selector: a list of (operator, key, values) requirements, all of which
    must hold. Operators: "=" (also ==), "!=", "in", "notin", "exists", "!", ">", "<"."""

    def __init__(self, text):
        self.text = text or ""
        self.reqs = []
        self._toks = _selector_tokens(self.text)
        self._pos = 0
        try:
            self._parse()
        except _SelectorError as e:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {e}")

    # token access: inside values, "in"/"notin" are plain identifiers
    def _peek(self, values=True):
        kind, lit = self._toks[self._pos]
        return ("id" if values and kind == "kw" else kind), lit

    def _take(self, values=True):
        tok = self._peek(values)
        self._pos += 1
        return tok

    def _parse(self):
        while True:
            kind, lit = self._peek()
            if kind == "end":
                return
            if not (kind == "id" or (kind, lit) == ("op", "!")):
                raise _SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")
            self.reqs.append(self._requirement())
            kind, lit = self._take()
            if kind == "end":
                return
            if (kind, lit) != ("op", ","):
                raise _SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
            kind, lit = self._peek()
            if not (kind == "id" or (kind, lit) == ("op", "!")):
                raise _SelectorError(f"found '{lit}', expected: identifier after ','")

    def _requirement(self):
        negated = False
        kind, lit = self._take()
        if (kind, lit) == ("op", "!"):
            negated = True
            kind, lit = self._take()
        if kind != "id":
            raise _SelectorError(f"found '{lit}', expected: identifier")
        key = lit
        self._check_key(key)
        nkind, nlit = self._peek()
        if nkind == "end" or (nkind, nlit) == ("op", ","):
            return ("!" if negated else "exists", key, None)
        if negated:
            # "!key" followed by an operator: the server reads the operator, then refuses "!"
            # as an operator of a binary requirement; either way it is a bad request.
            raise _SelectorError(f"found '{nlit}', expected: ',' or 'end of string'")
        kind, op = self._take(values=False)
        if not ((kind == "op" and op in ("=", "==", "!=", ">", "<")) or kind == "kw"):
            raise _SelectorError(f"found '{op}', expected: in, notin, =, ==, !=, gt, lt")
        if op in ("in", "notin"):
            vals = self._value_set()
        else:
            vals = self._exact_value()
            op = "=" if op == "==" else op
        self._check_values(key, op, vals)
        return (op, key, vals)

    def _value_set(self):
        kind, lit = self._take()
        if (kind, lit) != ("op", "("):
            raise _SelectorError(f"found '{lit}' expected: '('")
        kind, lit = self._peek()
        if (kind, lit) == ("op", ")"):
            self._take()
            return {""}
        if not (kind == "id" or (kind, lit) == ("op", ",")):
            raise _SelectorError(f"found '{lit}', expected: ',', ')' or identifier")
        vals, expect_value = set(), True  # after "(" or ",": a value (possibly empty) comes next
        while True:
            kind, lit = self._take()
            if expect_value:
                if kind == "id":
                    vals.add(lit)
                    expect_value = False
                elif (kind, lit) in (("op", ","), ("op", ")")):
                    vals.add("")  # an empty value before this comma or parenthesis
                    if lit == ")":
                        return vals
                else:
                    raise _SelectorError(f"found '{lit}', expected: ',', or identifier")
            elif (kind, lit) == ("op", ","):
                expect_value = True
            elif (kind, lit) == ("op", ")"):
                return vals
            else:
                raise _SelectorError(f"found '{lit}', expected: ',' or ')'")

    def _exact_value(self):
        kind, lit = self._peek()
        if kind == "end" or (kind, lit) == ("op", ","):
            return {""}
        kind, lit = self._take()
        if kind != "id":
            raise _SelectorError(f"found '{lit}', expected: identifier")
        return {lit}

    @staticmethod
    def _check_key(key):
        prob = qualified_name_problem(key)
        if prob:
            raise _SelectorError(f"key: Invalid value: {q(key)}: {prob}")

    @staticmethod
    def _check_values(key, op, vals):
        for i, v in enumerate(sorted(vals)):
            if op in (">", "<"):
                if not re.fullmatch(r"[+-]?\d+", v) or not -2**63 <= int(v) < 2**63:
                    raise _SelectorError(f"values[{i}]: Invalid value: {q(v)}: for 'Gt', 'Lt' operators, "
                                         "the value must be an integer")
            prob = label_value_problem(v)
            if prob:
                raise _SelectorError(f"values[{i}][{key}]: Invalid value: {q(v)}: {prob}")

    def matches(self, labels):
        labels = labels or {}
        for op, key, vals in self.reqs:
            has = key in labels
            v = labels.get(key)
            if op in ("=", "in") and not (has and v in vals):
                return False
            if op in ("!=", "notin") and has and v in vals:
                return False
            if op == "exists" and not has:
                return False
            if op == "!" and has:
                return False
            if op in (">", "<"):
                if not has or not re.fullmatch(r"[+-]?\d+", v):
                    return False
                n, lim = int(v), int(next(iter(vals)))
                if (op == ">" and not n > lim) or (op == "<" and not n < lim):
                    return False
        return True

    @property
    def empty(self):
        return not self.reqs


class _SelectorError(Exception):
    pass


class FieldSelector:
    def __init__(self, text, rt):
        self.reqs = []
        for p in [x for x in (text or "").split(",") if x.strip()]:
            m = re.fullmatch(r"\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*", p)
            if not m:
                raise ApiError(400, "BadRequest", f"invalid selector: '{text}'; can't understand '{p}'")
            field, op, val = m.group(1), m.group(2), m.group(3)
            allowed = ["metadata.name"] + (["metadata.namespace"] if rt.namespaced else [])
            if field not in allowed:
                raise ApiError(400, "BadRequest", f"field label not supported: {field}")
            self.reqs.append((field, "!=" if op == "!=" else "=", val))

    def matches(self, obj):
        md = obj.get("metadata", {})
        for field, op, val in self.reqs:
            actual = md.get("name" if field == "metadata.name" else "namespace", "")
            if (op == "=") != (actual == val):
                return False
        return True

    @property
    def empty(self):
        return not self.reqs


# ----------------------------------------------------------------------------------------------
# Users and authorization


class Users:
    def __init__(self, config):
        self.by_token = {}
        self.by_name = {}
        self.set(config)

    def set(self, config):
        users = config.get("users", config) if isinstance(config, dict) else {}
        by_token, by_name = {}, {}
        for name, u in users.items():
            u = dict(u)
            u.setdefault("token", secrets.token_hex(16))
            u.setdefault("allow", [])
            u["groups"] = [g for g in u.get("groups", []) if g != "system:authenticated"] + ["system:authenticated"]
            u["name"] = name
            by_token[u["token"]] = u
            by_name[name] = u
        self.by_token, self.by_name = by_token, by_name

    def public(self):
        return {n: {"token": u["token"], "allow": u["allow"], "groups": u["groups"]} for n, u in self.by_name.items()}


ANONYMOUS = {"name": "system:anonymous", "groups": ["system:unauthenticated"], "allow": [], "token": None}


def _in(value, allowed):
    if allowed is None or allowed == "*":
        return True
    if isinstance(allowed, str):
        allowed = [allowed]
    return "*" in allowed or value in allowed


def rule_allows(rule, verb, group, resource, namespace, name):
    if rule == "*":
        return True
    if not _in(verb, rule.get("verbs", "*")):
        return False
    res = rule.get("resources", rule.get("resource", "*"))
    if not _in(resource, res):
        return False
    if "apiGroups" in rule and not _in(group, rule["apiGroups"]):
        return False
    nss = rule.get("namespaces", rule.get("namespace"))
    if nss is not None and nss != "*":
        if not namespace:  # cluster scope (cluster-scoped kinds or all-namespace lists)
            return False
        if not _in(namespace, nss):
            return False
    if "names" in rule and not (name and _in(name, rule["names"])):
        return False
    return True


def allowed(user, verb, group, resource, namespace, name):
    rules = user.get("allow", [])
    if rules == "*":
        return True, "allowed for everything"
    for i, r in enumerate(rules):
        if rule_allows(r, verb, group, resource, namespace, name):
            return True, f"kubesim: allowed by rule {i} of user {q(user['name'])}"
    return False, ""


def forbidden_error(user, verb, rt, namespace, name):
    target = f"{rt.qualified} {q(name)}" if name else rt.qualified
    scope = f"in the namespace {q(namespace)}" if namespace else "at the cluster scope"
    return ApiError(403, "Forbidden",
                    f"{target} is forbidden: User {q(user['name'])} cannot {verb} resource {q(rt.plural)} in "
                    f"API group {q(rt.group)} {scope}", rt.details(name))


# ----------------------------------------------------------------------------------------------
# Store


class Event:
    __slots__ = ("rv", "res", "type", "key", "obj", "prev")

    def __init__(self, rv, res, etype, key, obj, prev):
        self.rv, self.res, self.type, self.key, self.obj, self.prev = rv, res, etype, key, obj, prev


class Store:
    def __init__(self, rv_start=1, max_events=20000, managed_fields=True):
        self.cond = threading.Condition()
        self.rv = rv_start
        self.horizon = rv_start  # events with rv > horizon are kept (the "watch cache"); older RVs are gone
        self.list_horizon = rv_start  # etcd compaction: LIST at an exact older RV or an older continue is 410
        self.objects = {r: {} for r in RESOURCES}
        self.events = []
        self.type_rv = {r: rv_start for r in RESOURCES}
        self.watchers = set()
        self.max_events = max_events
        self.managed_fields = managed_fields
        self.used_ips = set()

    # -- helpers (call with cond held)
    def next_rv(self):
        self.rv += 1
        return self.rv

    def allocate_cluster_ip(self):
        for _ in range(10000):
            ip = f"10.96.{random.randint(0, 255)}.{random.randint(1, 254)}"
            if ip not in self.used_ips:
                self.used_ips.add(ip)
                return ip
        return "10.96.0.1"

    def commit(self, res, etype, key, obj, prev):
        ev = Event(int(obj["metadata"]["resourceVersion"]), res, etype, key, obj, prev)
        if etype == "DELETED":
            del self.objects[res][key]
        else:
            self.objects[res][key] = obj
        self.events.append(ev)
        self.type_rv[res] = ev.rv
        if len(self.events) > self.max_events:
            drop = len(self.events) - self.max_events
            self.horizon = self.events[drop - 1].rv
            self.list_horizon = max(self.list_horizon, self.horizon)
            del self.events[:drop]
        for w in self.watchers:
            if w.res == res:
                w.queue.append(("event", ev))
        self.cond.notify_all()

    def compact(self, rv=None, scope="all"):
        """scope "all": etcd and the watch cache forget history up to rv (LIST Exact and WATCH get 410);
        scope "list": only etcd compacts, so watches from those versions still stream (as real servers
        do while their watch cache holds the events)."""
        rv = self.rv if rv is None else min(int(rv), self.rv)
        self.list_horizon = max(self.list_horizon, rv)
        if scope == "all" and rv > self.horizon:
            self.horizon = rv
            self.events = [e for e in self.events if e.rv > rv]
        return self.list_horizon

    def state_at(self, res, rv):
        """Objects of a type as they were at resourceVersion rv (horizon <= rv <= current)."""
        snap = dict(self.objects[res])
        for ev in reversed(self.events):
            if ev.rv <= rv:
                break
            if ev.res != res:
                continue
            if ev.type == "ADDED":
                snap.pop(ev.key, None)
            else:
                snap[ev.key] = ev.prev
        return snap


def managed_fields_for(obj, manager, ts, api_version):
    fields = {}
    for k, v in obj.items():
        if k in ("kind", "apiVersion", "metadata", "status"):
            continue
        fields[f"f:{k}"] = {}
    md = {}
    for part in ("labels", "annotations"):
        vals = obj.get("metadata", {}).get(part)
        if vals:
            sub = {".": {}}
            for lk in vals:
                sub[f"f:{lk}"] = {}
            md[f"f:{part}"] = sub
    if md:
        fields["f:metadata"] = md
    fields = dict(sorted(fields.items()))
    return {"manager": manager, "operation": "Update", "apiVersion": api_version, "time": ts,
            "fieldsType": "FieldsV1", "fieldsV1": fields}


# ----------------------------------------------------------------------------------------------
# Core object operations (shared by the REST API and the admin API)


class Cluster:
    def __init__(self, args):
        self.args = args
        self.store = Store(rv_start=args.rv_start, max_events=args.max_events,
                           managed_fields=not args.no_managed_fields)
        self.watch_list = args.watch_list
        self.bookmark_interval = args.bookmark_interval
        self.too_large_wait = args.too_large_wait
        self.faults = []  # request faults
        self.pending_watch_faults = []  # faults for watches not yet opened
        self.fault_lock = threading.Lock()
        self.request_log = deque(maxlen=2000)
        self.request_seq = 0
        self.connections = set()
        self.conn_lock = threading.Lock()
        self.conn_seq = 0  # numbers each accepted connection (the request log's "conn")
        self.down_until = 0.0
        self.watch_seq = 0
        with self.store.cond:
            for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
                self.create(RESOURCES["namespaces"], None, {"metadata": {"name": ns}}, "kube-apiserver")
            self.store.compact()

    # ---- writes
    def _prepare(self, rt, ns, body, old, validate=True):
        dec = Decoder(rt)
        decode_common(dec, body)
        KINDS[rt.plural].decode(dec, body)
        obj = copy.deepcopy(body)
        if obj.get("apiVersion") not in (None, "", rt.api_version):
            raise ApiError(400, "BadRequest", f"the API version in the data ({obj['apiVersion']}) does not match "
                           f"the expected API version ({rt.api_version})")
        if obj.get("kind") not in (None, "", rt.kind):
            raise ApiError(400, "BadRequest", f"the kind in the data ({obj['kind']}) does not match the expected "
                           f"kind ({rt.kind})")
        obj["kind"], obj["apiVersion"] = rt.kind, rt.api_version
        md = obj.setdefault("metadata", {})
        if md is None:
            md = obj["metadata"] = {}
        if rt.namespaced:
            if md.get("namespace") and md["namespace"] != ns:
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not match the "
                               "namespace sent on the request")
            md["namespace"] = ns
        else:
            md.pop("namespace", None)
        for f in ("selfLink", "deletionTimestamp", "deletionGracePeriodSeconds"):
            md.pop(f, None)
        for f in ("labels", "annotations"):
            if f in md and not md[f]:
                del md[f]
            elif f in md:
                md[f] = dict(sorted(md[f].items()))  # Go encodes maps with sorted keys
        kind = KINDS[rt.plural]
        kind.default(obj, old, self.store)
        if validate:
            errs = FieldErrors()
            if not md.get("name"):
                errs.required("metadata.name", "name or generateName is required")
            if rt.namespaced and not ns:
                errs.required("metadata.namespace")
            check_labels(errs, "metadata.labels", md.get("labels"))
            for k in (md.get("annotations") or {}):
                prob = qualified_name_problem(k)
                if prob:
                    errs.invalid("metadata.annotations", k, prob)
            kind.validate(errs, obj, old)
            errs.raise_if_any(rt, md.get("name"))
        return obj

    def _finish(self, rt, obj, manager, old):
        md = obj["metadata"]
        ts = now_ts()
        if old is None:
            md["uid"] = str(uuid.uuid4())
            md["creationTimestamp"] = ts
            if rt.has_generation:
                md["generation"] = 1
            else:
                md.pop("generation", None)
        else:
            omd = old["metadata"]
            md["uid"] = omd["uid"]
            md["creationTimestamp"] = omd["creationTimestamp"]
            if rt.has_generation:
                gen = omd.get("generation", 1)
                md["generation"] = gen + 1 if KINDS[rt.plural].spec_changed(obj, old) else gen
            else:
                md.pop("generation", None)
        if self.store.managed_fields:
            entries = [] if old is None else [e for e in (old["metadata"].get("managedFields") or [])
                                              if e.get("manager") != manager]
            entries.append(managed_fields_for(obj, manager, ts, rt.api_version))
            md["managedFields"] = entries
        else:
            md.pop("managedFields", None)
        md["resourceVersion"] = str(self.store.next_rv())
        obj["metadata"] = order_keys(md, META_ORDER)
        return order_keys(obj, TOP_ORDER)

    def _require_namespace(self, ns):
        if ("", ns) not in self.store.objects["namespaces"] and (None, ns) not in self.store.objects["namespaces"]:
            raise ApiError(404, "NotFound", f"namespaces {q(ns)} not found", {"name": ns, "kind": "namespaces"})

    def create(self, rt, ns, body, manager, validate=True):
        with self.store.cond:
            if isinstance(body, dict) and isinstance(body.get("metadata"), dict):
                md = body["metadata"]
                if not md.get("name") and md.get("generateName"):
                    body = copy.deepcopy(body)
                    body["metadata"]["name"] = md["generateName"] + "".join(
                        random.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
            obj = self._prepare(rt, ns, body, None, validate)
            name = obj["metadata"]["name"]
            if rt.namespaced:
                self._require_namespace(ns)
            key = (ns if rt.namespaced else None, name)
            if key in self.store.objects[rt.plural]:
                raise ApiError(409, "AlreadyExists", f"{rt.qualified} {q(name)} already exists", rt.details(name))
            obj = self._finish(rt, obj, manager, None)
            self.store.commit(rt.plural, "ADDED", key, obj, None)
            return obj

    def update(self, rt, ns, name, body, manager, validate=True, check_rv=True):
        with self.store.cond:
            if not isinstance(body, dict):
                decode_common(Decoder(rt), body)
            md = body.get("metadata") or {}
            if md.get("name") and md["name"] != name:
                raise ApiError(400, "BadRequest", f"the name of the object ({md['name']}) does not match the name "
                               f"on the URL ({name})")
            key = (ns if rt.namespaced else None, name)
            old = self.store.objects[rt.plural].get(key)
            if old is None:
                raise ApiError(404, "NotFound", f"{rt.qualified} {q(name)} not found", rt.details(name))
            conflict = ApiError(409, "Conflict", f"Operation cannot be fulfilled on {rt.qualified} {q(name)}: the "
                                "object has been modified; please apply your changes to the latest version and "
                                "try again", rt.details(name))
            if check_rv and md.get("resourceVersion") and md["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise conflict
            if md.get("uid") and md["uid"] != old["metadata"]["uid"]:
                raise ApiError(409, "Conflict", f"Operation cannot be fulfilled on {rt.qualified} {q(name)}: "
                               f"Precondition failed: UID in precondition: {old['metadata']['uid']}, UID in object "
                               f"meta: {md['uid']}", rt.details(name))
            body = copy.deepcopy(body)
            body.setdefault("metadata", {})["name"] = name
            obj = self._prepare(rt, ns, body, old, validate)
            if self._same(obj, old):
                return old
            obj = self._finish(rt, obj, manager, old)
            self.store.commit(rt.plural, "MODIFIED", key, obj, old)
            return obj

    @staticmethod
    def _same(new, old):
        def strip(o):
            o = dict(o)
            o["metadata"] = {k: v for k, v in o["metadata"].items()
                             if k not in ("resourceVersion", "managedFields", "uid", "creationTimestamp",
                                          "generation")}
            return o
        return strip(new) == strip(old)

    def delete(self, rt, ns, name, preconditions=None):
        with self.store.cond:
            key = (ns if rt.namespaced else None, name)
            old = self.store.objects[rt.plural].get(key)
            if old is None:
                raise ApiError(404, "NotFound", f"{rt.qualified} {q(name)} not found", rt.details(name))
            pre = preconditions or {}
            if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
                raise ApiError(409, "Conflict", f"Operation cannot be fulfilled on {rt.qualified} {q(name)}: the "
                               "object has been modified; please apply your changes to the latest version and "
                               "try again", rt.details(name))
            if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
                raise ApiError(409, "Conflict", f"Operation cannot be fulfilled on {rt.qualified} {q(name)}: "
                               f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                               f"{old['metadata']['uid']}", rt.details(name))
            if rt.plural == "namespaces":
                for res, objs in self.store.objects.items():
                    if RESOURCES[res].namespaced:
                        for k in [k for k in objs if k[0] == name]:
                            self._delete_key(RESOURCES[res], k)
            gone = self._delete_key(rt, key)
            if rt.plural == "namespaces":
                shown = copy.deepcopy(gone)
                shown["metadata"]["deletionTimestamp"] = now_ts()
                shown["status"] = {"phase": "Terminating"}
                return 200, shown
            if rt.plural == "services":
                return 200, gone
            return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                         "details": dict(rt.details(name), uid=old["metadata"]["uid"])}

    def _delete_key(self, rt, key):
        old = self.store.objects[rt.plural][key]
        gone = copy.deepcopy(old)
        gone["metadata"]["resourceVersion"] = str(self.store.next_rv())
        if rt.plural == "services":
            self.store.used_ips.discard(old.get("spec", {}).get("clusterIP"))
        self.store.commit(rt.plural, "DELETED", key, gone, old)
        return gone

    def restart(self, history="same", rv=None, objects="keep", keep_conn=None):
        """Drops every connection; with history=new, starts a new resourceVersion history."""
        st = self.store
        with st.cond:
            if history == "new":
                new_rv = int(rv) if rv is not None else st.rv + 1000
                keep = objects != "clear"
                st.events = []
                st.rv = new_rv
                for res in RESOURCES:
                    old = st.objects[res]
                    st.objects[res] = {}
                    if not keep and res != "namespaces":
                        continue
                    for key, obj in sorted(old.items(), key=lambda kv: (kv[0][0] or "", kv[0][1])):
                        o = copy.deepcopy(obj)
                        o["metadata"]["resourceVersion"] = str(st.next_rv())
                        st.objects[res][key] = o
                for res in RESOURCES:
                    st.type_rv[res] = st.rv
                st.horizon = st.list_horizon = st.rv
            for w in list(st.watchers):
                w.drop = "fin"
            st.cond.notify_all()
        self.drop_connections(keep_conn)

    def drop_connections(self, keep_conn=None):
        with self.conn_lock:
            conns = [c for c in self.connections if c is not keep_conn]
        for c in conns:
            abort_socket(c.connection, "fin")

    def log_request(self, entry):
        with self.fault_lock:
            self.request_seq += 1
            entry["seq"] = self.request_seq
            self.request_log.append(entry)


def client_gone(sock):
    """A watch client never sends anything after its request: readable means EOF or close_notify."""
    try:
        r, _, _ = select.select([sock], [], [], 0)
        return bool(r)
    except (OSError, ValueError):
        return True


def abort_socket(sock, mode):
    try:
        if mode == "rst":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            socket.socket.close(sock)
        else:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


# ----------------------------------------------------------------------------------------------
# Watchers


# --watch-list modes: "refuse" answers 422 (the captured v1.25 server); "support" holds the
# initial-events-end bookmark back until the next event of the resource type (the captured v1.28
# server); "support-immediate" sends it right after the initial events (a server whose watch
# cache gets progress notifications).
WATCH_LIST_MODES = ("refuse", "support", "support-immediate")
WATCH_LIST_SUPPORT = ("support", "support-immediate")


class Watcher:
    def __init__(self, wid, res, user, ns, lsel, fsel, bookmarks, table, include_object, start_rv, timeout):
        self.id = wid
        self.res = res
        self.user = user
        self.ns = ns
        self.lsel = lsel
        self.fsel = fsel
        self.bookmarks = bookmarks
        self.table = table
        self.include_object = include_object
        self.start_rv = start_rv
        self.last_rv = start_rv
        self.queue = deque()
        self.drop = None  # "fin" | "rst" | "end" when asked to stop
        self.stalled_until = 0.0
        self.bookmark_now = None  # None | "eligible" | "force"
        # watch-list: "pending" while the k8s.io/initial-events-end bookmark is held back (the
        # real v1.28 server), "sent" once it went out; None for a plain watch
        self.initial_end = None
        self.initial_end_at = None  # monotonic time of the bookmark tick that releases it
        self.opened = time.time()
        self.deadline = time.monotonic() + timeout
        self.sent = 0

    def info(self):
        return {"id": self.id, "resource": self.res, "user": self.user, "namespace": self.ns,
                "startResourceVersion": str(self.start_rv), "lastResourceVersion": str(self.last_rv),
                "allowWatchBookmarks": self.bookmarks, "table": self.table, "eventsSent": self.sent,
                "stalled": self.stalled_until > time.monotonic(), "opened": self.opened,
                "initialEventsEnd": self.initial_end, "labelSelector": self.lsel.text if self.lsel else ""}

    def selects(self, obj):
        if obj is None:
            return False
        if self.ns and obj["metadata"].get("namespace") != self.ns:
            return False
        return self.lsel.matches(obj["metadata"].get("labels")) and self.fsel.matches(obj)

    def filter(self, ev):
        """Turns a store event into what this watch sees (or None), like the watch cache does."""
        if ev.rv <= self.start_rv:
            return None
        new_ok = ev.type != "DELETED" and self.selects(ev.obj)
        old_ok = ev.prev is not None and self.selects(ev.prev)
        if ev.type == "ADDED":
            return ("ADDED", ev.obj) if new_ok else None
        if ev.type == "DELETED":
            return ("DELETED", ev.obj) if self.selects(ev.obj) else None
        if new_ok and old_ok:
            return ("MODIFIED", ev.obj)
        if new_ok:
            return ("ADDED", ev.obj)
        if old_ok:
            o = copy.deepcopy(ev.prev)
            o["metadata"]["resourceVersion"] = str(ev.rv)
            return ("DELETED", o)
        return None


def table_for(rt, objs, now, include_object, list_meta=None):
    kind = KINDS[rt.plural]
    cols = [{"name": n, "type": t, "format": f, "description": d, "priority": p}
            for (n, t, f, d, p) in kind.COLUMNS]
    rows = []
    for o in objs:
        row = {"cells": kind.cells(o, now)}
        if include_object == "Object":
            row["object"] = o
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": o["metadata"]}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta or {},
            "columnDefinitions": cols, "rows": rows}


def wants_table(accept):
    return "as=Table" in (accept or "")


# ----------------------------------------------------------------------------------------------
# HTTP handler


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "kubesim"
    timeout = 300

    # --- plumbing
    def setup(self):
        super().setup()
        with self.server.cluster.conn_lock:
            self.server.cluster.connections.add(self)
            self.server.cluster.conn_seq += 1
            self.conn_id = self.server.cluster.conn_seq

    def finish(self):
        with self.server.cluster.conn_lock:
            self.server.cluster.connections.discard(self)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, fmt, *args):
        if self.server.cluster.args.verbose:
            sys.stderr.write("kubesim: %s - %s\n" % (self.address_string(), fmt % args))

    @property
    def cluster(self):
        return self.server.cluster

    def pretty(self):
        ua = self.headers.get("User-Agent", "")
        return ua.startswith("curl") or ua.startswith("Wget") or ua.startswith("Mozilla/5.0")

    def _head(self, code, headers, pf=True):
        self.status_code = code
        lines = [f"HTTP/1.1 {code} {http.HTTPStatus(code).phrase}",
                 f"Audit-Id: {uuid.uuid4()}",
                 "Cache-Control: no-cache, private"]
        lines += headers
        if pf:
            lines += [f"X-Kubernetes-Pf-Flowschema-Uid: {self.server.pf_uid[0]}",
                      f"X-Kubernetes-Pf-Prioritylevel-Uid: {self.server.pf_uid[1]}"]
        lines.append(f"Date: {self.date_time_string()}")
        return ("\r\n".join(lines) + "\r\n").encode()

    def send_body(self, code, body, content_type="application/json", extra=(), pf=True):
        headers = [f"Content-Type: {content_type}"] + list(extra)
        if self.command == "HEAD":
            body = b""
        if len(body) <= LIST_CHUNK_THRESHOLD:
            data = self._head(code, headers + [f"Content-Length: {len(body)}"], pf) + b"\r\n" + body
        else:
            data = self._head(code, headers + ["Transfer-Encoding: chunked"], pf) + b"\r\n"
            for i in range(0, len(body), 4096):
                piece = body[i:i + 4096]
                data += b"%x\r\n" % len(piece) + piece + b"\r\n"
            data += b"0\r\n\r\n"
        self.wfile.write(data)

    def send_json(self, code, obj, extra=(), pf=True):
        self.send_body(code, go_json(obj, self.pretty()), extra=extra, pf=pf)

    def send_error_status(self, err, pf=True):
        extra = list(err.headers)
        if err.code == 403:
            extra.append("X-Content-Type-Options: nosniff")
        self.send_json(err.code, err.status(), extra=extra, pf=pf)

    def read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def json_body(self, rt=None, want_kind=None):
        raw = self.body
        if (self.headers.get("Content-Type") or "").startswith("application/vnd.kubernetes.protobuf"):
            return decode_protobuf_body(raw, rt, want_kind)
        try:
            return json.loads(raw.decode("utf-8")) if raw.strip() else None
        except (ValueError, UnicodeDecodeError) as e:
            kind = rt.kind if rt else "object"
            raise ApiError(400, "BadRequest", f"{kind} in version \"v1\" cannot be handled as a {kind}: "
                           f"invalid character in JSON: {e}")

    # --- verbs
    def do_GET(self):
        self.dispatch()

    def do_HEAD(self):
        self.dispatch()

    def do_POST(self):
        self.dispatch()

    def do_PUT(self):
        self.dispatch()

    def do_PATCH(self):
        self.dispatch()

    def do_DELETE(self):
        self.dispatch()

    def dispatch(self):
        self.status_code = 0
        self.user = None
        url = urlsplit(self.path)
        self.url_path = url.path.rstrip("/") or "/"
        self.query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        entry = {"time": time.time(), "method": self.command, "path": self.url_path, "query": self.query,
                 "userAgent": self.headers.get("User-Agent", ""), "conn": self.conn_id}
        try:
            self.body = b""
            self.body = self.read_body()  # always consume the body so keep-alive stays in sync
            if self.url_path.startswith(ADMIN_PREFIX):
                entry["admin"] = True
                self.admin()
            else:
                self.api()
        except ApiError as e:
            if self.status_code == 0:
                self.send_error_status(e, pf=e.code != 401)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True
        except Exception as e:  # noqa: BLE001 - a bug must answer 500, not hang the client
            traceback.print_exc()
            if self.status_code == 0:
                self.send_json(500, make_status(500, "InternalError", f"kubesim internal error: {e}"))
        finally:
            entry["user"] = self.user["name"] if self.user else None
            entry["code"] = self.status_code
            if not entry.get("admin"):
                self.cluster.log_request(entry)

    # --- authentication and faults
    def authenticate(self):
        auth = self.headers.get("Authorization", "")
        if not auth:
            cert_user = self.cert_user()
            if cert_user is not None:
                return cert_user
            if self.cluster.args.no_anonymous:
                raise ApiError(401, "Unauthorized", "Unauthorized")
            return ANONYMOUS
        if not auth.startswith("Bearer "):
            raise ApiError(401, "Unauthorized", "Unauthorized")
        user = self.server.users.by_token.get(auth[len("Bearer "):].strip())
        if user is None:
            raise ApiError(401, "Unauthorized", "Unauthorized")
        return user

    def cert_user(self):
        """The user named by a verified client certificate (CN = name, O = groups), if any."""
        try:
            cert = self.connection.getpeercert()
        except (ValueError, OSError):
            return None
        if not cert:
            return None
        cn, groups = None, []
        for rdn in cert.get("subject", ()):
            for k, v in rdn:
                if k == "commonName":
                    cn = v
                elif k == "organizationName":
                    groups.append(v)
        if not cn:
            return None
        known = self.server.users.by_name.get(cn)
        if known is not None:
            return known
        return {"name": cn, "groups": groups + ["system:authenticated"], "allow": [], "token": None}

    def apply_faults(self, verb, res, ns):
        cl = self.cluster
        with cl.fault_lock:
            hit = None
            for f in cl.faults:
                m = f.get("match", {})
                if m.get("verb") and not _in(verb, m["verb"]):
                    continue
                if m.get("resource") and not _in(res, m["resource"]):
                    continue
                if m.get("namespace") and ns != m["namespace"]:
                    continue
                if m.get("path") and not self.url_path.startswith(m["path"]):
                    continue
                if m.get("user") and (self.user or {}).get("name") != m["user"]:
                    continue
                if f.get("skip", 0) > 0:
                    f["skip"] -= 1
                    continue
                hit = f
                f["count"] = f.get("count", 1) - 1
                f["hits"] = f.get("hits", 0) + 1
                break
            cl.faults = [f for f in cl.faults if f.get("count", 1) != 0]
        if not hit:
            return
        kind = hit.get("type", "status")
        if kind == "delay":
            time.sleep(float(hit.get("seconds", 1)))
            return
        if kind == "close":
            self.close_connection = True
            self.status_code = -1
            abort_socket(self.connection, hit.get("mode", "fin"))
            raise ConnectionResetError("fault: close")
        code = int(hit.get("code", 500))
        if code == 429:
            ra = int(hit.get("retry_after", 1))
            raise ApiError(429, "TooManyRequests", hit.get("message", "Too many requests, please try again later."),
                           {"retryAfterSeconds": ra}, headers=[f"Retry-After: {ra}"])
        reason = {500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout", 409: "Conflict",
                  410: "Expired", 400: "BadRequest"}.get(code, "InternalError")
        msg = hit.get("message", {500: "Internal error occurred: kubesim injected fault"}.get(code, "kubesim injected fault"))
        extra = [f"Retry-After: {int(hit['retry_after'])}"] if "retry_after" in hit else []
        raise ApiError(code, reason, msg, {"causes": [{"message": msg}]} if code == 500 else None, headers=extra)

    # --- API routing
    def api(self):
        self.user = self.authenticate()
        p = self.url_path
        parts = [x for x in p.split("/") if x]
        info = self.parse_resource_path(parts)
        if info is None:
            self.non_resource(p, parts)
            return
        rt, ns, name, sub = info
        verb = self.verb_for(name)
        self.apply_faults(verb, rt.plural, ns)
        if sub:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        ok, _ = allowed(self.user, verb, rt.group, rt.plural, ns, name)
        if not ok:
            raise forbidden_error(self.user, verb, rt, ns, name)
        getattr(self, "op_" + verb)(rt, ns, name)

    def verb_for(self, name):
        m = self.command
        if m in ("GET", "HEAD"):
            if name:
                return "get"
            return "watch" if self.query.get("watch") in ("true", "1", "True") else "list"
        return {"POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if name else "deletecollection"}[m]

    @staticmethod
    def parse_resource_path(parts):
        """Returns (ResourceType, namespace, name, subresource) for resource URLs, else None."""
        if len(parts) >= 2 and parts[0] == "api" and parts[1] == "v1":
            group, rest = "", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, rest = parts[1], parts[3:]
            if parts[2] != "v1":
                return None
        else:
            return None
        if not rest:
            return None
        ns = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            ns, rest = rest[1], rest[2:]
        rt = RESOURCES.get(rest[0])
        if rt is None or rt.group != group:
            if rest[0] in ("selfsubjectaccessreviews", "selfsubjectreviews") and len(rest) == 1:
                return None
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if ns is not None and not rt.namespaced:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = "/".join(rest[2:]) if len(rest) > 2 else None
        return rt, ns, name, sub

    # --- non-resource endpoints
    def non_resource(self, p, parts):
        anon = self.user is ANONYMOUS
        public = p in ("/version", "/healthz", "/livez", "/readyz")
        if anon and not public:
            self.apply_faults("get", None, None)
            raise ApiError(403, "Forbidden", f"forbidden: User {q(self.user['name'])} cannot "
                           f"{self.command.lower()} path {q(p)}", {})
        if p == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" and self.command == "POST":
            self.apply_faults("create", "selfsubjectaccessreviews", None)
            return self.ssar()
        if p == "/apis/authentication.k8s.io/v1/selfsubjectreviews" and self.command == "POST":
            self.apply_faults("create", "selfsubjectreviews", None)
            return self.send_json(201, {"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1",
                                        "metadata": {"creationTimestamp": None},
                                        "status": {"userInfo": {"username": self.user["name"],
                                                                "groups": self.user["groups"]}}})
        self.apply_faults("get", None, None)
        if self.command not in ("GET", "HEAD"):
            raise ApiError(405, "MethodNotAllowed", f"the server does not allow this method on the requested resource")
        if p in ("/healthz", "/livez", "/readyz"):
            return self.send_body(200, b"ok", content_type="text/plain; charset=utf-8")
        body = self.discovery(p)
        if body is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        self.send_json(200, body)

    def discovery(self, p):
        port = self.server.server_address[1]
        groups = {"discovery.k8s.io": ["endpointslices"], "authorization.k8s.io": ["selfsubjectaccessreviews"],
                  "authentication.k8s.io": ["selfsubjectreviews"]}

        def group_obj(g):
            gv = {"groupVersion": f"{g}/v1", "version": "v1"}
            return {"name": g, "versions": [gv], "preferredVersion": gv}

        def resources(gv_resources):
            out = []
            for r in gv_resources:
                if r in RESOURCES:
                    rt = RESOURCES[r]
                    d = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
                         "kind": rt.kind, "verbs": STANDARD_VERBS}
                    if rt.short_names:
                        d["shortNames"] = rt.short_names
                else:
                    kind = {"selfsubjectaccessreviews": "SelfSubjectAccessReview",
                            "selfsubjectreviews": "SelfSubjectReview"}[r]
                    d = {"name": r, "singularName": kind.lower(), "namespaced": False, "kind": kind,
                         "verbs": ["create"]}
                out.append(d)
            return out

        if p == "/version":
            return self.server.version_info
        if p == "/api":
            return {"kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": f"127.0.0.1:{port}"}]}
        if p == "/apis":
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [group_obj(g) for g in groups]}
        if p == "/api/v1":
            return {"kind": "APIResourceList", "groupVersion": "v1",
                    "resources": resources(["namespaces", "nodes", "services"])}
        for g, rs in groups.items():
            if p == f"/apis/{g}":
                return dict({"kind": "APIGroup", "apiVersion": "v1"}, **group_obj(g))
            if p == f"/apis/{g}/v1":
                return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{g}/v1",
                        "resources": resources(rs)}
        if p == "/openapi/v3":
            paths = {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=KUBESIM1"}}
            for g in ("discovery.k8s.io",):
                paths[f"apis/{g}/v1"] = {"serverRelativeURL": f"/openapi/v3/apis/{g}/v1?hash=KUBESIM1"}
            return {"paths": paths}
        if p.startswith("/openapi/v3/"):
            gv = p[len("/openapi/v3/"):]
            return self.openapi_gv(gv)
        return None

    @staticmethod
    def openapi_gv(gv):
        """A minimal OpenAPI v3 document: only what kubectl needs to learn that the server validates
        fields itself (the fieldValidation parameter on PATCH)."""
        paths = {}
        for rt in RESOURCES.values():
            if (rt.group and gv != f"apis/{rt.group}/v1") or (not rt.group and gv != "api/v1"):
                continue
            base = f"/{gv}/namespaces/{{namespace}}/{rt.plural}/{{name}}" if rt.namespaced else f"/{gv}/{rt.plural}/{{name}}"
            paths[base] = {"patch": {
                "operationId": f"patch{rt.kind}",
                "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                               {"name": "fieldManager", "in": "query", "schema": {"type": "string"}}],
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind}}}
        if not paths:
            return None
        return {"openapi": "3.0.0", "info": {"title": "Kubernetes (kubesim)", "version": "v1"}, "paths": paths,
                "components": {"schemas": {}}}

    def ssar(self):
        body = self.json_body(None, "SelfSubjectAccessReview") or {}
        spec = body.get("spec") or {}
        ra = spec.get("resourceAttributes")
        nra = spec.get("nonResourceAttributes")
        if ra:
            ok, why = allowed(self.user, ra.get("verb", ""), ra.get("group", ""), ra.get("resource", ""),
                              ra.get("namespace", ""), ra.get("name", ""))
        elif nra:
            ok, why = (self.user is not ANONYMOUS, "kubesim: non-resource URLs are open to authenticated users")
        else:
            raise ApiError(422, "Invalid", "SelfSubjectAccessReview.authorization.k8s.io \"\" is invalid: "
                           "spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes "
                           "or resourceAttributes must be specified",
                           {"group": "authorization.k8s.io", "kind": "SelfSubjectAccessReview"})
        status = {"allowed": ok}
        if ok and why:
            status["reason"] = why
        self.send_json(201, {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                             "metadata": {"creationTimestamp": None}, "spec": spec, "status": status})

    # --- resource operations
    def manager(self, default):
        fm = self.query.get("fieldManager")
        if fm:
            return fm
        ua = self.headers.get("User-Agent", "")
        return ua.split("/")[0] if ua else default

    def op_get(self, rt, ns, name):
        if rt.namespaced and ns is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        obj = self.cluster.store.objects[rt.plural].get((ns if rt.namespaced else None, name))
        if obj is None:
            raise ApiError(404, "NotFound", f"{rt.qualified} {q(name)} not found", rt.details(name))
        if wants_table(self.headers.get("Accept")):
            md = {"resourceVersion": obj["metadata"]["resourceVersion"]}
            return self.send_json(200, table_for(rt, [obj], time.time(), self.query.get("includeObject"), md))
        self.send_json(200, obj)

    def op_create(self, rt, ns, name):
        if name:
            raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
        if rt.namespaced and ns is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        body = self.json_body(rt)
        if self.query.get("dryRun"):
            obj = self.cluster._prepare(rt, ns, body, None)
            return self.send_json(201, obj)
        obj = self.cluster.create(rt, ns, body, self.manager("unknown"))
        self.send_json(201, obj)

    def op_update(self, rt, ns, name):
        body = self.json_body(rt)
        obj = self.cluster.update(rt, ns, name, body, self.manager("unknown"))
        self.send_json(200, obj)

    def op_patch(self, rt, ns, name):
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        patch = self.json_body(rt)
        st = self.cluster.store
        with st.cond:
            key = (ns if rt.namespaced else None, name)
            cur = st.objects[rt.plural].get(key)
            if cur is None:
                if ctype == "application/apply-patch+yaml":
                    obj = self.cluster.create(rt, ns, patch, self.manager("unknown"))
                    return self.send_json(201, obj)
                raise ApiError(404, "NotFound", f"{rt.qualified} {q(name)} not found", rt.details(name))
            if ctype == "application/json-patch+json":
                new = json_patch(copy.deepcopy(cur), patch)
            elif ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json",
                           "application/apply-patch+yaml"):
                new = merge_patch(copy.deepcopy(cur), patch)
            else:
                raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format - "
                               f"accepted media types include: application/json-patch+json, "
                               f"application/merge-patch+json, application/apply-patch+yaml")
            rv_given = isinstance(patch, dict) and (patch.get("metadata") or {}).get("resourceVersion")
            if not rv_given:
                new.setdefault("metadata", {})["resourceVersion"] = cur["metadata"]["resourceVersion"]
            obj = self.cluster.update(rt, ns, name, new, self.manager("unknown"))
        self.send_json(200, obj)

    def op_delete(self, rt, ns, name):
        body = self.json_body() or {}
        pre = (body.get("preconditions") if isinstance(body, dict) else None) or {}
        code, obj = self.cluster.delete(rt, ns, name, pre)
        self.send_json(code, obj)

    def op_deletecollection(self, rt, ns, name):
        raise ApiError(405, "MethodNotAllowed", "kubesim does not implement deletecollection")

    # --- list
    def op_list(self, rt, ns, name):
        cl = self.cluster
        st = cl.store
        qy = self.query
        lsel = LabelSelector(qy.get("labelSelector"))
        fsel = FieldSelector(qy.get("fieldSelector"), rt)
        rv_param = qy.get("resourceVersion", "")
        match = qy.get("resourceVersionMatch", "")
        cont = qy.get("continue", "")
        try:
            limit = int(qy.get("limit", "0") or 0)
        except ValueError:
            raise ApiError(400, "BadRequest", f"invalid limit {q(qy.get('limit'))}")
        if match and match not in ("Exact", "NotOlderThan"):
            raise invalid_list_options([("resourceVersionMatch", "FieldValueNotSupported",
                                         f"Unsupported value: {q(match)}: supported values: \"Exact\", \"NotOlderThan\"")])
        if match and not rv_param:
            raise invalid_list_options([("resourceVersionMatch", "FieldValueForbidden",
                                         "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided")])
        if match == "Exact" and rv_param == "0":
            raise invalid_list_options([("resourceVersionMatch", "FieldValueForbidden",
                                         "Forbidden: resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"")])
        if cont and rv_param:
            raise invalid_list_options([("resourceVersion", "FieldValueForbidden",
                                         "Forbidden: specifying resource version is not allowed when using continue")])
        want_rv = None
        if rv_param:
            try:
                want_rv = int(rv_param)
            except ValueError:
                raise ApiError(400, "BadRequest", f"invalid resource version: strconv.ParseUint: parsing "
                               f"{q(rv_param)}: invalid syntax")
        start_key = None
        exact_rv = None
        if cont:
            try:
                tok = json.loads(b64url_decode(cont))
                crv, start_key = int(tok["rv"]), tok["start"]
            except Exception:  # noqa: BLE001
                raise ApiError(400, "BadRequest", "continue key is not valid: incorrect encoded start resourceVersion "
                               "(version meta.k8s.io/v1)")
            exact_rv = crv if crv > 0 else None
        elif match == "Exact":
            exact_rv = want_rv
        elif want_rv and want_rv > 0:
            deadline = time.monotonic() + cl.too_large_wait
            with st.cond:
                while st.rv < want_rv and time.monotonic() < deadline:
                    st.cond.wait(max(0.0, deadline - time.monotonic()))
                if st.rv < want_rv:
                    raise ApiError(504, "Timeout", f"Too large resource version: {want_rv}, current: {st.rv}",
                                   {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                                    "retryAfterSeconds": 1}, headers=["Retry-After: 1"])
        with st.cond:
            if exact_rv is not None:
                if exact_rv < st.list_horizon:
                    if cont:
                        fresh = b64url(json.dumps({"v": "meta.k8s.io/v1", "rv": -1, "start": start_key},
                                                  separators=(",", ":")).encode())
                        raise ApiError(410, "Expired", "The provided continue parameter is too old to display a "
                                       "consistent list result. You can start a new list without the continue "
                                       "parameter, or use the continue token in this response to retrieve the "
                                       "remainder of the results. Continuing with the provided token results in an "
                                       "inconsistent list - objects that were created, modified, or deleted between "
                                       "the time the first chunk was returned and now may show up in the list.",
                                       metadata={"continue": fresh})
                    raise ApiError(410, "Expired", "The resourceVersion for the provided list is too old.")
                if exact_rv > st.rv:
                    raise ApiError(504, "Timeout", f"Too large resource version: {exact_rv}, current: {st.rv}",
                                   {"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                                    "retryAfterSeconds": 1}, headers=["Retry-After: 1"])
                snap = st.state_at(rt.plural, exact_rv)
                list_rv = exact_rv
            else:
                snap = dict(st.objects[rt.plural])
                list_rv = st.rv
        items = []
        for key in sorted(snap, key=lambda k: (k[0] or "", k[1])):
            obj = snap[key]
            if ns and key[0] != ns:
                continue
            skey = key[1] if (ns or not rt.namespaced) else f"{key[0]}/{key[1]}"
            if start_key is not None and skey < start_key:
                continue
            if not lsel.matches(obj["metadata"].get("labels")) or not fsel.matches(obj):
                continue
            items.append((skey, obj))
        meta = {"resourceVersion": str(list_rv)}
        if limit > 0 and not (rv_param == "0" and not match and not cont) and len(items) > limit:
            last = items[limit - 1][0]
            meta["continue"] = b64url(json.dumps({"v": "meta.k8s.io/v1", "rv": list_rv, "start": last + "\x00"},
                                                 separators=(",", ":")).encode())
            if lsel.empty and fsel.empty:
                meta["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        objs = [o for _, o in items]
        if wants_table(self.headers.get("Accept")):
            return self.send_json(200, table_for(rt, objs, time.time(), qy.get("includeObject"), meta))
        out = []
        for o in objs:
            o = dict(o)
            o.pop("kind", None)
            o.pop("apiVersion", None)
            out.append(o)
        self.send_json(200, {"kind": rt.kind + "List", "apiVersion": rt.api_version, "metadata": meta, "items": out})

    # --- watch
    def op_watch(self, rt, ns, name):
        cl = self.cluster
        st = cl.store
        qy = self.query
        lsel = LabelSelector(qy.get("labelSelector"))
        fsel = FieldSelector(qy.get("fieldSelector"), rt)
        rv_param = qy.get("resourceVersion", "")
        match = qy.get("resourceVersionMatch", "")
        send_initial = qy.get("sendInitialEvents", "")
        bookmarks = qy.get("allowWatchBookmarks") in ("true", "1", "True")
        table = wants_table(self.headers.get("Accept"))
        include_object = qy.get("includeObject")
        try:
            timeout = float(qy.get("timeoutSeconds") or 0)
        except ValueError:
            raise ApiError(400, "BadRequest", "invalid timeoutSeconds")
        if timeout <= 0:
            timeout = random.uniform(1800, 3600)
        watch_list = send_initial in ("true", "1", "True")
        if match or send_initial:
            if cl.watch_list not in WATCH_LIST_SUPPORT:
                causes = []
                if match:
                    causes.append(("resourceVersionMatch", "FieldValueForbidden",
                                   "Forbidden: resourceVersionMatch is forbidden for watch"))
                    if not rv_param:
                        causes.append(("resourceVersionMatch", "FieldValueForbidden",
                                       "Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"))
                if not causes:
                    causes.append(("sendInitialEvents", "FieldValueForbidden",
                                   "Forbidden: sendInitialEvents is not supported by this server"))
                raise invalid_list_options(causes)
            errs = []
            if send_initial and match != "NotOlderThan":
                errs.append(("resourceVersionMatch", "FieldValueForbidden",
                             "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"))
            if watch_list and not bookmarks:
                errs.append(("allowWatchBookmarks", "FieldValueForbidden",
                             "Forbidden: allowWatchBookmarks must be set to true when sendInitialEvents is true"))
            if match and not send_initial:
                errs.append(("resourceVersionMatch", "FieldValueForbidden",
                             "Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided"))
            if errs:
                raise invalid_list_options(errs)
        start_rv = None
        if rv_param not in ("", "0"):
            try:
                start_rv = int(rv_param)
            except ValueError:
                raise ApiError(400, "BadRequest", f"invalid resource version: strconv.ParseUint: parsing "
                               f"{q(rv_param)}: invalid syntax")
        with st.cond:
            cl.watch_seq += 1
            w = Watcher(cl.watch_seq, rt.plural, self.user["name"], ns, lsel, fsel, bookmarks, table,
                        include_object, 0, timeout)
            initial = []
            expired = None
            if start_rv is None or watch_list:
                # synthetic ADDED events for what exists now, then changes after the current RV
                cur = st.rv
                for key in sorted(st.objects[rt.plural], key=lambda k: (k[0] or "", k[1])):
                    o = st.objects[rt.plural][key]
                    if w.selects(o):
                        initial.append(("ADDED", o))
                w.start_rv = w.last_rv = cur
                if start_rv is not None and watch_list and start_rv > cur:
                    w.start_rv = w.last_rv = start_rv
            elif start_rv < st.horizon:
                expired = start_rv
            else:
                w.start_rv = w.last_rv = start_rv
                for ev in st.events:
                    if ev.rv > start_rv and ev.res == rt.plural:
                        w.queue.append(("event", ev))
            if expired is None:
                st.watchers.add(w)
                with cl.fault_lock:
                    keep = []
                    for f in cl.pending_watch_faults:
                        if not f.get("resource") or _in(rt.plural, f["resource"]):
                            w.queue.append(("ctl", f))
                            if f.get("stall_seconds") is not None:
                                w.stalled_until = time.monotonic() + float(f["stall_seconds"])
                            f["count"] = f.get("count", 1) - 1
                        if f.get("count", 1) != 0:
                            keep.append(f)
                    cl.pending_watch_faults = keep
            horizon = st.horizon
        # The watcher is forgotten however this ends, the head's write included: a client that left
        # while its request waited (a reset connection) fails that write, and its watch must not stay
        # listed as open.
        try:
            self.send_raw(self._head(200, ["Content-Type: application/json", "Transfer-Encoding: chunked"]) + b"\r\n")
            if expired is not None:
                err = {"type": "ERROR", "object": make_status(410, "Expired",
                                                              f"too old resource version: {expired} ({horizon})")}
                self.send_chunk(go_json(err))
                self.send_raw(b"0\r\n\r\n")
                return
            self.run_watch(rt, w, initial, watch_list and cl.watch_list)
        finally:
            with st.cond:
                st.watchers.discard(w)

    def send_raw(self, data):
        self.wfile.write(data)

    def send_chunk(self, data):
        self.wfile.write(b"%x\r\n" % len(data) + data + b"\r\n")

    def encode_event(self, rt, w, etype, obj):
        if w.table:
            obj = table_for(rt, [obj], time.time(), w.include_object,
                            {"resourceVersion": obj["metadata"]["resourceVersion"]})
        return go_json({"type": etype, "object": obj})

    def bookmark(self, rt, rv, initial_end=False):
        md = {"resourceVersion": str(rv), "creationTimestamp": None}
        if initial_end:
            md["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": md}
        if rt.plural == "endpointslices":
            obj.update({"addressType": "", "endpoints": None, "ports": None})
        elif rt.plural in ("services", "nodes", "namespaces"):
            obj.update({"spec": {}, "status": {}})
        return go_json({"type": "BOOKMARK", "object": obj})

    def run_watch(self, rt, w, initial, watch_list):
        cl = self.cluster
        st = cl.store
        # initial events may share chunks (the real server does that too)
        buf = b""
        for etype, obj in initial:
            buf += self.encode_event(rt, w, etype, obj)
            w.sent += 1
            if len(buf) > 8192:
                self.send_chunk(buf)
                buf = b""
        if buf:
            self.send_chunk(buf)
        if watch_list == "support-immediate":
            self.send_chunk(self.bookmark(rt, w.start_rv, initial_end=True))
            w.initial_end = "sent"
        elif watch_list:
            # As the captured v1.28 server: the initial-events-end bookmark waits for the next
            # event of this resource type anywhere in the cluster (see the loop below).
            w.initial_end = "pending"
        interval = cl.bookmark_interval
        next_bm = time.monotonic() + interval
        near_end_bm = w.deadline - 1.0
        near_end_sent = False
        next_gone_check = time.monotonic() + 0.5
        while True:
            batch = []
            action = None
            with st.cond:
                while True:
                    now = time.monotonic()
                    if w.drop:
                        action = w.drop
                        break
                    if now >= w.deadline:
                        action = "end"
                        break
                    stalled = w.stalled_until > now
                    if not stalled and w.queue:
                        while w.queue:
                            batch.append(w.queue.popleft())
                        break
                    if not stalled and w.initial_end == "pending":
                        # Held back until something of this type changed after the start; it then
                        # goes out on the next tick of the watch cache's 1 s bookmark timer (the
                        # capture shows 0.45 s and 0.95 s after the releasing write). A forced
                        # bookmark (as a progress notification would) releases it at once.
                        if w.bookmark_now == "force":
                            w.initial_end_at = now
                        elif w.initial_end_at is None and st.type_rv[rt.plural] > w.start_rv:
                            w.initial_end_at = math.floor(now) + 1.0
                        w.bookmark_now = None
                        if w.initial_end_at is not None and now >= w.initial_end_at:
                            action = ("initial-end", max(st.type_rv[rt.plural], w.last_rv))
                            break
                    elif not stalled and w.bookmarks and not w.table:
                        eligible = st.type_rv[rt.plural] > w.start_rv
                        if w.bookmark_now == "force" or (w.bookmark_now and eligible):
                            action = ("bookmark", max(st.type_rv[rt.plural], w.last_rv))
                            w.bookmark_now = None
                            break
                        w.bookmark_now = None
                        if now >= next_bm or (not near_end_sent and now >= near_end_bm):
                            # a due bookmark is sent only if something newer than the start happened
                            if now >= near_end_bm:
                                near_end_sent = True
                            if now >= next_bm:
                                next_bm = now + interval
                            if eligible:
                                action = ("bookmark", max(st.type_rv[rt.plural], w.last_rv))
                                break
                    waits = [w.deadline]
                    if stalled:
                        waits.append(w.stalled_until)
                    elif w.initial_end == "pending":
                        if w.initial_end_at is not None:
                            waits.append(w.initial_end_at)
                    elif w.bookmarks:
                        waits.append(next_bm)
                        if not near_end_sent:
                            waits.append(near_end_bm)
                    if now >= next_gone_check:
                        next_gone_check = now + 0.5
                        if client_gone(self.connection):
                            action = "client-gone"
                            break
                    st.cond.wait(max(0.01, min(min(waits), next_gone_check) - now))
            if action == "end":
                self.send_raw(b"0\r\n\r\n")
                return
            if action in ("fin", "rst"):
                self.close_connection = True
                abort_socket(self.connection, action)
                return
            if isinstance(action, tuple) and action[0] == "initial-end":
                self.send_chunk(self.bookmark(rt, action[1], initial_end=True))
                w.initial_end = "sent"
                w.last_rv = max(w.last_rv, action[1])
                next_bm = time.monotonic() + interval
                continue
            if isinstance(action, tuple):
                self.send_chunk(self.bookmark(rt, action[1]))
                w.last_rv = max(w.last_rv, action[1])
                continue
            if action == "client-gone":
                self.close_connection = True
                return
            pending = b""
            for item in batch:
                if item[0] == "event":
                    ev = item[1]
                    seen = w.filter(ev)
                    w.last_rv = max(w.last_rv, ev.rv)
                    if seen is None:
                        continue
                    # events that were already waiting share a chunk, as with the real server
                    pending += self.encode_event(rt, w, seen[0], seen[1])
                    w.sent += 1
                    if len(pending) > 8192:
                        self.send_chunk(pending)
                        pending = b""
                    continue
                if pending:
                    self.send_chunk(pending)
                    pending = b""
                f = item[1]
                kind = f.get("kind")
                if kind == "malformed":
                    text = f.get("data") or '{"type":"MODIFIED","object":{"kind":"' + rt.kind + '","metadata":{'
                    self.send_chunk(text.encode() + b"\n")
                elif kind == "truncated":
                    ev = self.bookmark(rt, w.last_rv) if w.bookmarks else go_json(
                        {"type": "MODIFIED", "object": {"kind": rt.kind, "apiVersion": rt.api_version,
                                                        "metadata": {"name": "kubesim-truncated"}}})
                    cut = max(1, len(ev) // 2)
                    self.send_raw(b"%x\r\n" % len(ev) + ev[:cut])
                    self.close_connection = True
                    abort_socket(self.connection, "fin")
                    return
                elif kind == "error":
                    code = int(f.get("code", 410))
                    reason = {410: "Expired", 500: "InternalError"}.get(code, "InternalError")
                    msg = f.get("message", f"too old resource version: {w.start_rv} ({st.horizon})"
                                if code == 410 else "kubesim injected watch error")
                    self.send_chunk(go_json({"type": "ERROR", "object": make_status(code, reason, msg)}))
                    self.send_raw(b"0\r\n\r\n")
                    return
                elif kind == "end":
                    self.send_raw(b"0\r\n\r\n")
                    return
            if pending:
                self.send_chunk(pending)

    # --- admin API
    def admin(self):
        auth = self.headers.get("Authorization", "")
        if auth != f"Bearer {self.server.admin_token}":
            raise ApiError(401, "Unauthorized", "Unauthorized")
        self.user = {"name": "kubesim-admin"}
        cl = self.cluster
        st = cl.store
        path = self.url_path[len(ADMIN_PREFIX):] or "/"
        body = self.json_body() if self.command in ("POST", "PUT", "DELETE", "PATCH") else None
        body = body or {}
        m = self.command
        if path == "/state" and m == "GET":
            with st.cond:
                out = {"resourceVersion": str(st.rv), "horizon": str(st.horizon),
                       "listHorizon": str(st.list_horizon),
                       "objects": {r: len(o) for r, o in st.objects.items()},
                       "typeResourceVersion": {r: str(v) for r, v in st.type_rv.items()},
                       "events": len(st.events), "watches": [w.info() for w in st.watchers],
                       "watchList": cl.watch_list, "bookmarkInterval": cl.bookmark_interval}
            with cl.fault_lock:
                out["faults"] = copy.deepcopy(cl.faults)
                out["pendingWatchFaults"] = copy.deepcopy(cl.pending_watch_faults)
            return self.send_json(200, out)
        if path == "/watches" and m == "GET":
            with st.cond:
                ws = [w.info() for w in st.watchers if not self.query.get("resource") or w.res == self.query["resource"]]
            return self.send_json(200, {"watches": ws})
        if path == "/wait-watches" and m == "POST":
            want = int(body.get("count", 1))
            deadline = time.monotonic() + float(body.get("timeout", 10))
            res = body.get("resource")
            newer = int(body.get("after_id", 0))
            with st.cond:
                while True:
                    ws = [w for w in st.watchers if (not res or w.res == res) and w.id > newer]
                    if len(ws) >= want or time.monotonic() >= deadline:
                        break
                    st.cond.wait(0.05)
                out = {"ok": len(ws) >= want, "watches": [w.info() for w in ws]}
            return self.send_json(200 if out["ok"] else 408, out)
        if path == "/requests" and m == "GET":
            since = int(self.query.get("since", "0"))
            with cl.fault_lock:
                reqs = [r for r in cl.request_log if r["seq"] > since]
            return self.send_json(200, {"requests": reqs})
        if path == "/requests" and m == "DELETE":
            with cl.fault_lock:
                cl.request_log.clear()
            return self.send_json(200, {"ok": True})
        if path == "/objects" and m == "POST":
            return self.admin_objects(body)
        if path == "/objects" and m == "GET":
            res = self.query.get("resource", "endpointslices")
            with st.cond:
                items = list(st.objects[res].values())
            return self.send_json(200, {"items": items, "resourceVersion": str(st.rv)})
        if path == "/compact" and m == "POST":
            with st.cond:
                h = st.compact(body.get("resourceVersion"), body.get("scope", "all"))
            return self.send_json(200, {"horizon": str(st.horizon), "listHorizon": str(h),
                                        "resourceVersion": str(st.rv)})
        if path == "/faults" and m == "POST":
            f = dict(body)
            f.setdefault("count", 1)
            with cl.fault_lock:
                cl.faults.append(f)
            return self.send_json(200, {"ok": True, "faults": cl.faults})
        if path == "/faults" and m == "DELETE":
            with cl.fault_lock:
                cl.faults = []
                cl.pending_watch_faults = []
            return self.send_json(200, {"ok": True})
        if path.startswith("/watches/") and m == "POST":
            return self.admin_watches(path[len("/watches/"):], body)
        if path == "/restart" and m == "POST":
            down = float(body.get("down_seconds", 0))
            cl.restart(body.get("history", "same"), body.get("resourceVersion"), body.get("objects", "keep"),
                       keep_conn=self)
            if down > 0:
                cl.down_until = time.monotonic() + down
            out = {"resourceVersion": str(st.rv), "horizon": str(st.horizon), "listHorizon": str(st.list_horizon)}
            self.close_connection = True
            return self.send_json(200, out)
        if path == "/config" and m == "POST":
            if "watch_list" in body:
                if body["watch_list"] not in WATCH_LIST_MODES:
                    raise ApiError(400, "BadRequest", "watch_list must be one of " + ", ".join(WATCH_LIST_MODES))
                cl.watch_list = body["watch_list"]
            if "bookmark_interval" in body:
                cl.bookmark_interval = float(body["bookmark_interval"])
            if "too_large_wait" in body:
                cl.too_large_wait = float(body["too_large_wait"])
            if "users" in body:
                self.server.users.set(body["users"])
                self.server.write_kubeconfigs()
            return self.send_json(200, {"watch_list": cl.watch_list, "bookmark_interval": cl.bookmark_interval,
                                        "users": self.server.users.public()})
        raise ApiError(404, "NotFound", f"unknown admin endpoint {m} {path}")

    def admin_objects(self, body):
        cl = self.cluster
        ops = body.get("items") if isinstance(body.get("items"), list) else [body]
        results = []
        for op in ops:
            kind = op.get("op", "apply")
            obj = op.get("object") or {}
            validate = op.get("validate", True)
            rt = RESOURCES.get(op.get("resource", "")) or KIND_TO_RESOURCE.get(obj.get("kind", ""))
            if rt is None:
                raise ApiError(400, "BadRequest", "admin objects: give 'resource' or an object with a known 'kind'")
            md = obj.get("metadata") or {}
            ns = (op.get("namespace") or md.get("namespace") or "default") if rt.namespaced else None
            name = op.get("name") or md.get("name")
            try:
                if kind == "delete":
                    code, out = cl.delete(rt, ns, name)
                    results.append({"ok": True, "object": out})
                    continue
                with cl.store.cond:
                    exists = (ns, name) in cl.store.objects[rt.plural]
                    if kind == "create" or (kind == "apply" and not exists):
                        if rt.namespaced and op.get("create_namespace", True):
                            if (None, ns) not in cl.store.objects["namespaces"]:
                                cl.create(RESOURCES["namespaces"], None, {"metadata": {"name": ns}}, "kubesim-admin")
                        out = cl.create(rt, ns, obj, "kubesim-admin", validate)
                    else:
                        o = copy.deepcopy(obj)
                        if kind == "apply":
                            o.setdefault("metadata", {}).pop("resourceVersion", None)
                        out = cl.update(rt, ns, name, o, "kubesim-admin", validate)
                    if kind in ("apply", "create") and "status" in obj and out.get("status") != obj["status"]:
                        # the admin API may also set status (there is no status subresource)
                        out = self._admin_set_status(rt, ns, name, obj["status"])
                results.append({"ok": True, "object": out})
            except ApiError as e:
                if not isinstance(body.get("items"), list):
                    raise  # a single operation answers with the Status itself
                results.append({"ok": False, "status": e.status()})
        if isinstance(body.get("items"), list):
            return self.send_json(200, {"results": results, "resourceVersion": str(cl.store.rv)})
        return self.send_json(200, results[0]["object"])

    def _admin_set_status(self, rt, ns, name, status):
        cl = self.cluster
        st = cl.store
        with st.cond:
            key = (ns, name)
            old = st.objects[rt.plural][key]
            obj = copy.deepcopy(old)
            obj["status"] = status
            obj = cl._finish(rt, obj, "kubesim-admin", old)
            st.commit(rt.plural, "MODIFIED", key, obj, old)
            return obj

    def admin_watches(self, what, body):
        cl = self.cluster
        st = cl.store
        res = body.get("resource")
        ids = body.get("ids")
        target = body.get("target", "open")
        with st.cond:
            ws = [w for w in st.watchers if (not res or _in(w.res, res)) and (not ids or w.id in ids)]
            affected = [w.id for w in ws]
            if what == "drop":
                mode = body.get("mode", "fin")
                for w in ws:
                    w.drop = mode
            elif what == "stall":
                secs = body.get("seconds")
                until = float("inf") if secs is None else time.monotonic() + float(secs)
                if target in ("open", "both"):
                    for w in ws:
                        w.stalled_until = until
                if target in ("next", "both"):
                    with cl.fault_lock:
                        cl.pending_watch_faults.append({"kind": "stall", "resource": res,
                                                        "stall_seconds": 1e9 if secs is None else float(secs),
                                                        "count": int(body.get("count", 1))})
            elif what == "unstall":
                for w in ws:
                    w.stalled_until = 0.0
            elif what == "bookmark":
                for w in ws:
                    w.bookmark_now = "force" if body.get("force") else "eligible"
            elif what in ("inject", "error", "end"):
                f = {"kind": body.get("kind", what)} if what == "inject" else dict(body, kind=what)
                if what == "inject" and f["kind"] not in ("malformed", "truncated", "error", "end"):
                    raise ApiError(400, "BadRequest", "inject kind must be malformed, truncated, error or end")
                for k in ("data", "code", "message"):
                    if k in body:
                        f[k] = body[k]
                if target in ("open", "both"):
                    for w in ws:
                        w.queue.append(("ctl", f))
                if target in ("next", "both"):
                    nf = dict(f, resource=res, count=int(body.get("count", 1)))
                    with cl.fault_lock:
                        cl.pending_watch_faults.append(nf)
            else:
                raise ApiError(404, "NotFound", f"unknown watch control {what}")
            st.cond.notify_all()
        self.send_json(200, {"ok": True, "watches": affected})


def invalid_list_options(causes):
    msgs = [f"{field}: {text}" for field, _, text in causes]
    joined = "[" + ", ".join(msgs) + "]" if len(msgs) > 1 else msgs[0]
    return ApiError(422, "Invalid", f"ListOptions.meta.k8s.io \"\" is invalid: {joined}",
                    {"group": "meta.k8s.io", "kind": "ListOptions",
                     "causes": [{"reason": r, "message": t, "field": f} for f, r, t in causes]})


def merge_patch(target, patch):
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for k, v in patch.items():
        if k.startswith("$"):
            continue
        if v is None:
            target.pop(k, None)
        else:
            target[k] = merge_patch(target.get(k), v)
    return target


def json_patch(doc, ops):
    def walk(path):
        parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]
        cur = doc
        for p in parts[:-1]:
            cur = cur[int(p)] if isinstance(cur, list) else cur[p]
        return cur, parts[-1] if parts else None

    try:
        for op in ops or []:
            kind, path = op["op"], op["path"]
            parent, last = walk(path)
            if kind in ("add", "replace"):
                if isinstance(parent, list):
                    if last == "-":
                        parent.append(op["value"])
                    elif kind == "add":
                        parent.insert(int(last), op["value"])
                    else:
                        parent[int(last)] = op["value"]
                else:
                    if kind == "replace" and last not in parent:
                        raise KeyError(last)
                    parent[last] = op["value"]
            elif kind == "remove":
                if isinstance(parent, list):
                    del parent[int(last)]
                else:
                    del parent[last]
            elif kind == "test":
                cur = parent[int(last)] if isinstance(parent, list) else parent[last]
                if cur != op.get("value"):
                    raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: "
                                   f"testing value {path} failed")
            elif kind in ("move", "copy"):
                sp, sl = walk(op["from"])
                val = sp[int(sl)] if isinstance(sp, list) else sp[sl]
                if kind == "move":
                    if isinstance(sp, list):
                        del sp[int(sl)]
                    else:
                        del sp[sl]
                parent, last = walk(path)
                if isinstance(parent, list):
                    parent.insert(len(parent) if last == "-" else int(last), copy.deepcopy(val))
                else:
                    parent[last] = copy.deepcopy(val)
            else:
                raise KeyError(kind)
    except ApiError:
        raise
    except (KeyError, IndexError, ValueError, TypeError) as e:
        raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: "
                       f"json patch failed: {e}")
    return doc


# ----------------------------------------------------------------------------------------------
# Protobuf request bodies (kubectl's typed clients, e.g. `kubectl create namespace/service`, send
# application/vnd.kubernetes.protobuf). Only the fields those commands send are decoded.


def pb_fields(data):
    """Yields (field number, wire type, value) of a protobuf message."""
    i = 0
    n = len(data)

    def varint():
        nonlocal i
        shift = result = 0
        while True:
            if i >= n:
                raise ValueError("truncated varint")
            b = data[i]
            i += 1
            result |= (b & 0x7F) << shift
            if not b & 0x80:
                return result
            shift += 7

    while i < n:
        key = varint()
        num, wt = key >> 3, key & 7
        if wt == 0:
            yield num, wt, varint()
        elif wt == 2:
            ln = varint()
            yield num, wt, data[i:i + ln]
            i += ln
        elif wt == 1:
            yield num, wt, data[i:i + 8]
            i += 8
        elif wt == 5:
            yield num, wt, data[i:i + 4]
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wt}")


# schema: field number -> (json name, type); types: "str", "int", "bool", "[str]", "map", ("msg", schema),
# ("[msg]", schema), "intstr"
PB_META = {1: ("name", "str"), 2: ("generateName", "str"), 3: ("namespace", "str"), 6: ("resourceVersion", "str"),
           5: ("uid", "str"), 11: ("labels", "map"), 12: ("annotations", "map"), 14: ("finalizers", "[str]")}
PB_SERVICE_PORT = {1: ("name", "str"), 2: ("protocol", "str"), 3: ("port", "int"), 4: ("targetPort", "intstr"),
                   5: ("nodePort", "int"), 6: ("appProtocol", "str")}
PB_SERVICE_SPEC = {1: ("ports", ("[msg]", PB_SERVICE_PORT)), 2: ("selector", "map"), 3: ("clusterIP", "str"),
                   18: ("clusterIPs", "[str]"), 4: ("type", "str"), 5: ("externalIPs", "[str]"),
                   7: ("sessionAffinity", "str"), 8: ("loadBalancerIP", "str"), 10: ("externalName", "str"),
                   11: ("externalTrafficPolicy", "str"), 13: ("publishNotReadyAddresses", "bool"),
                   19: ("ipFamilies", "[str]"), 17: ("ipFamilyPolicy", "str"),
                   20: ("allocateLoadBalancerNodePorts", "bool"), 21: ("loadBalancerClass", "str"),
                   22: ("internalTrafficPolicy", "str")}
PB_KINDS = {
    "Namespace": {1: ("metadata", ("msg", PB_META)), 2: ("spec", ("msg", {1: ("finalizers", "[str]")}))},
    "Service": {1: ("metadata", ("msg", PB_META)), 2: ("spec", ("msg", PB_SERVICE_SPEC))},
    "SelfSubjectAccessReview": {1: ("metadata", ("msg", PB_META)), 2: ("spec", ("msg", {
        1: ("resourceAttributes", ("msg", {1: ("namespace", "str"), 2: ("verb", "str"), 3: ("group", "str"),
                                           4: ("version", "str"), 5: ("resource", "str"),
                                           6: ("subresource", "str"), 7: ("name", "str")})),
        2: ("nonResourceAttributes", ("msg", {1: ("path", "str"), 2: ("verb", "str")}))}))},
    "SelfSubjectReview": {1: ("metadata", ("msg", PB_META))},
}


def pb_decode(data, schema):
    out = {}
    for num, wt, val in pb_fields(data):
        if num not in schema:
            continue
        name, typ = schema[num]
        if typ == "str":
            if val:
                out[name] = val.decode()
        elif typ == "int":
            if val:  # zero values are omitted, as JSON omitempty does
                out[name] = val - (1 << 64) if val >= 1 << 63 else val
        elif typ == "bool":
            if val:
                out[name] = True
        elif typ == "[str]":
            out.setdefault(name, []).append(val.decode())
        elif typ == "map":
            kv = {k: v for k, _, v in pb_fields(val)}
            out.setdefault(name, {})[kv.get(1, b"").decode()] = kv.get(2, b"").decode()
        elif typ == "intstr":
            iv = pb_decode(val, {1: ("type", "int"), 2: ("intVal", "int"), 3: ("strVal", "str")})
            out[name] = iv.get("strVal", "") if iv.get("type") == 1 else iv.get("intVal", 0)
        elif typ[0] == "msg":
            out[name] = pb_decode(val, typ[1])
        elif typ[0] == "[msg]":
            out.setdefault(name, []).append(pb_decode(val, typ[1]))
    return out


def decode_protobuf_body(raw, rt, want_kind=None):
    kind_name = want_kind or rt.kind
    if not raw.startswith(b"k8s\x00"):
        raise ApiError(400, "BadRequest", "provided input is not a protobuf-encoded Kubernetes object")
    try:
        env = {n: v for n, _, v in pb_fields(raw[4:])}
        tm = {n: v.decode() for n, _, v in pb_fields(env.get(1, b""))}
        kind = tm.get(2, "")
        if kind != (want_kind or rt.kind) or kind not in PB_KINDS:
            raise ApiError(415, "UnsupportedMediaType", f"kubesim decodes protobuf only for Namespace and Service "
                           f"(got {kind or 'nothing'}); send application/json")
        obj = pb_decode(env.get(2, b""), PB_KINDS[kind])
    except ValueError as e:
        raise ApiError(400, "BadRequest", f"{kind_name} in version \"v1\" cannot be handled as a {kind_name}: {e}")
    obj = dict({"kind": kind, "apiVersion": tm.get(1, "v1")}, **obj)
    return obj


# ----------------------------------------------------------------------------------------------
# Server


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, cluster, ssl_ctx, users, admin_token, state_dir, args):
        self.cluster = cluster
        self.ssl_ctx = ssl_ctx
        self.users = users
        self.admin_token = admin_token
        self.state_dir = state_dir
        self.args = args
        self.pf_uid = (str(uuid.uuid4()), str(uuid.uuid4()))
        git = args.server_version
        m = re.match(r"v(\d+)\.(\d+)", git)
        self.version_info = {"major": m.group(1) if m else "1", "minor": m.group(2) if m else "32",
                             "gitVersion": git, "gitCommit": "0000000000000000000000000000000000000000",
                             "gitTreeState": "clean", "buildDate": now_ts(), "goVersion": "go1.23.0",
                             "compiler": "gc", "platform": "linux/amd64"}
        super().__init__(addr, Handler)

    def finish_request(self, request, client_address):
        if time.monotonic() < self.cluster.down_until:
            abort_socket(request, "rst")
            return
        try:
            request.settimeout(10)
            tls = self.ssl_ctx.wrap_socket(request, server_side=True)
            tls.settimeout(None)
        except (OSError, ssl.SSLError):
            try:
                request.close()
            except OSError:
                pass
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def shutdown_request(self, request):
        try:
            request.close()
        except OSError:
            pass

    def handle_error(self, request, client_address):
        if self.args.verbose:
            traceback.print_exc()

    @property
    def url(self):
        host, port = self.server_address[:2]
        return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"

    def write_kubeconfigs(self):
        """kubeconfig-<user>.yaml (token) and, for users with a client certificate,
        kubeconfig-<user>-cert.yaml (certificate files)."""
        out = {}
        cluster = self.args.cluster_name

        def kubeconfig(path, name, user_lines):
            text = (f"apiVersion: v1\nkind: Config\nclusters:\n- name: {cluster}\n  cluster:\n"
                    f"    server: {self.url}\n    certificate-authority: {self.ca_file}\n"
                    f"users:\n- name: {name}\n  user:\n{user_lines}"
                    f"contexts:\n- name: {cluster}\n  context:\n    cluster: {cluster}\n    user: {name}\n"
                    f"    namespace: default\ncurrent-context: {cluster}\n")
            write_atomic(path, text)

        for name, u in self.users.by_name.items():
            path = os.path.join(self.state_dir, f"kubeconfig-{name}.yaml")
            kubeconfig(path, name, f"    token: {u['token']}\n")
            out[name] = {"token": u["token"], "kubeconfig": path}
            if u.get("client_cert") or self.args.client_certs:
                crt, key = issue_client_cert(self.state_dir, name, [g for g in u["groups"]
                                                                     if g != "system:authenticated"])
                cpath = os.path.join(self.state_dir, f"kubeconfig-{name}-cert.yaml")
                kubeconfig(cpath, name, f"    client-certificate: {crt}\n    client-key: {key}\n")
                out[name].update({"client_cert": crt, "client_key": key, "kubeconfig_cert": cpath})
        return out


def write_atomic(path, text):
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def issue_client_cert(state_dir, user, groups):
    """A client certificate signed by the cluster CA: CN is the user name, O the groups."""
    crt = os.path.join(state_dir, f"client-{user}.crt")
    key = os.path.join(state_dir, f"client-{user}.key")
    csr = os.path.join(state_dir, f"client-{user}.csr")
    ext = os.path.join(state_dir, f"client-{user}.ext")
    subj = f"/CN={user}" + "".join(f"/O={g}" for g in groups)
    run = lambda *a: subprocess.run(["openssl", *a], check=True, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
        "-out", csr, "-subj", subj)
    with open(ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=clientAuth\n")
    run("x509", "-req", "-in", csr, "-CA", os.path.join(state_dir, "ca.crt"), "-CAkey",
        os.path.join(state_dir, "ca.key"), "-CAcreateserial", "-out", crt, "-days", "3650", "-extfile", ext)
    return crt, key


def make_certs(state_dir, cluster_name, reuse):
    ca_crt = os.path.join(state_dir, "ca.crt")
    ca_key = os.path.join(state_dir, "ca.key")
    crt = os.path.join(state_dir, "server.crt")
    key = os.path.join(state_dir, "server.key")
    if reuse and all(os.path.exists(p) for p in (ca_crt, ca_key, crt, key)):
        return ca_crt, crt, key
    run = lambda *a: subprocess.run(["openssl", *a], check=True, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("req", "-x509", *ec, "-keyout", ca_key, "-out", ca_crt, "-days", "3650",
        "-subj", f"/CN=kubesim-ca-{cluster_name}", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature")
    csr = os.path.join(state_dir, "server.csr")
    run("req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=kube-apiserver")
    ext = os.path.join(state_dir, "server.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost,IP:::1\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
        "-days", "3650", "-extfile", ext)
    return ca_crt, crt, key


def main(argv=None):
    ap = argparse.ArgumentParser(description="Kubernetes API simulator for tests (see docs/kubesim.md)")
    ap.add_argument("--port", type=int, default=0, help="TCP port (0 = pick a free one)")
    ap.add_argument("--host", choices=["127.0.0.1", "::1"], default="127.0.0.1", help="loopback address to bind")
    ap.add_argument("--client-certs", action="store_true",
                    help="issue a client certificate for every user (else only users with client_cert: true)")
    ap.add_argument("--state-dir", required=True, help="directory for certificates, kubeconfigs and the ready file")
    ap.add_argument("--ready-file", help="where to write the ready JSON (default STATE_DIR/kubesim.json)")
    ap.add_argument("--tokens-file", help="JSON users file: {\"users\": {name: {token, allow, groups}}}")
    ap.add_argument("--admin-token", help="token for /kubesim/admin (default: random)")
    ap.add_argument("--cluster-name", default="kubesim", help="name used in kubeconfigs and the CA subject")
    ap.add_argument("--watch-list", choices=WATCH_LIST_MODES, default="refuse",
                    help="answer sendInitialEvents watches with 422 (like v1.25), stream them with the "
                         "initial-events-end bookmark held back until the type's next event (support, like "
                         "v1.28), or with that bookmark at once (support-immediate)")
    ap.add_argument("--bookmark-interval", type=float, default=60.0, help="seconds between periodic bookmarks")
    ap.add_argument("--too-large-wait", type=float, default=3.0,
                    help="seconds a LIST waits for a future resourceVersion before answering 504")
    ap.add_argument("--rv-start", type=int, default=1, help="first resourceVersion of the history")
    ap.add_argument("--max-events", type=int, default=20000, help="event history kept before auto-compaction")
    ap.add_argument("--server-version", default="v1.32.0-kubesim", help="gitVersion reported by /version")
    ap.add_argument("--no-managed-fields", action="store_true", help="do not add metadata.managedFields")
    ap.add_argument("--no-anonymous", action="store_true", help="answer 401 to requests without a token")
    ap.add_argument("--new-certs", action="store_true", help="regenerate the CA even if the state dir has one")
    ap.add_argument("--exit-with-parent", action="store_true",
                    help="exit when the parent process dies (so a crashed test leaves no server behind)")
    ap.add_argument("--idle-timeout", type=float, default=300.0,
                    help="seconds an idle keep-alive connection (or a blocked write) may last")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    if args.exit_with_parent:
        parent = os.getppid()

        def watch_parent():
            while os.getppid() == parent:
                time.sleep(0.5)
            os._exit(0)
        threading.Thread(target=watch_parent, daemon=True).start()
    os.makedirs(args.state_dir, exist_ok=True)
    state_dir = os.path.abspath(args.state_dir)
    ready_path = args.ready_file or os.path.join(state_dir, "kubesim.json")
    if os.path.exists(ready_path):
        os.unlink(ready_path)  # a stale ready file must never be mistaken for this run's
    ca_crt, crt, key = make_certs(state_dir, args.cluster_name, reuse=not args.new_certs)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    ctx.set_alpn_protocols(["http/1.1"])
    # like kube-apiserver: ask for a client certificate, verify it if one is sent
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.load_verify_locations(ca_crt)

    if args.tokens_file:
        with open(args.tokens_file) as f:
            users_cfg = json.load(f)
    else:
        users_cfg = {"users": {"admin": {"allow": "*"}}}
    users = Users(users_cfg)
    admin_token = args.admin_token or secrets.token_hex(16)
    Handler.timeout = args.idle_timeout
    cluster = Cluster(args)
    if args.host == "::1":
        Server.address_family = socket.AF_INET6
    server = Server((args.host, args.port), cluster, ctx, users, admin_token, state_dir, args)
    server.ca_file = ca_crt
    port = server.server_address[1]
    ready = {
        "version": 1, "pid": os.getpid(), "cluster": args.cluster_name, "host": args.host, "port": port,
        "server": server.url, "ca_file": ca_crt, "cert_file": crt, "key_file": key,
        "admin_token": admin_token, "admin_url": f"{server.url}{ADMIN_PREFIX}",
        "state_dir": state_dir, "watch_list": args.watch_list,
        "users": server.write_kubeconfigs(),
    }
    write_atomic(ready_path, json.dumps(ready, indent=2) + "\n")
    print(json.dumps(ready), flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
