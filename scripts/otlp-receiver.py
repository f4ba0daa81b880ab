#!/usr/bin/env python3
"""A small OTLP/HTTP trace receiver for Minute's tests (no collector needed).

Accepts `POST /v1/traces` with an `ExportTraceServiceRequest` in protobuf (the OTLP/HTTP
default, optionally gzip-encoded), as the OpenTelemetry exporters send it, and appends one
JSON object per span to OUT:

    {"service": "messaging", "resource": {...}, "trace_id": "<32 hex>",
     "span_id": "<16 hex>", "parent_span_id": "<16 hex or empty>", "name": "...",
     "kind": "SPAN_KIND_SERVER", "attributes": {...}}

Prints `listening on <port>` once ready (use --port 0 for a free port).

Needs the `opentelemetry-proto` package (which brings `protobuf`):
    python3 -m venv target/otlp/venv && target/otlp/venv/bin/pip install opentelemetry-proto==1.45.2
"""

import argparse
import gzip
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span


def any_value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


def attributes(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


def spans_of(request):
    for rs in request.resource_spans:
        resource = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            for span in ss.spans:
                yield {
                    "service": resource.get("service.name", ""),
                    "resource": resource,
                    "trace_id": span.trace_id.hex(),
                    "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex(),
                    "name": span.name,
                    "kind": Span.SpanKind.Name(span.kind),
                    "start_unix_nano": span.start_time_unix_nano,
                    "end_unix_nano": span.end_time_unix_nano,
                    "attributes": attributes(span.attributes),
                }


class Handler(BaseHTTPRequestHandler):
    lock = threading.Lock()
    out = None

    def do_POST(self):  # noqa: N802 (http.server's naming)
        if self.path != "/v1/traces":
            self.send_error(404, "only /v1/traces is received here")
            return
        length = int(self.headers.get("content-length", "0"))
        body = self.rfile.read(length)
        if self.headers.get("content-encoding", "") == "gzip":
            body = gzip.decompress(body)
        if "protobuf" not in self.headers.get("content-type", ""):
            self.send_error(415, "send application/x-protobuf")
            return
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except Exception as e:  # a malformed export is the sender's bug: say so
            self.send_error(400, f"not an ExportTraceServiceRequest: {e}")
            return
        lines = [json.dumps(s, sort_keys=True) for s in spans_of(request)]
        with Handler.lock:
            with open(Handler.out, "a", encoding="utf-8") as f:
                for line in lines:
                    f.write(line + "\n")
        reply = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=4318)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--out", required=True, help="file to append JSON lines to")
    args = parser.parse_args()
    Handler.out = args.out
    open(args.out, "a").close()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
