"""A pass-through proxy in front of `cluster-health-mcp snapshot serve` that adds the one API the
peer (kubernetes-mcp-server) needs and snapshot serve lacks: SelfSubjectAccessReview.

Why: kubernetes-mcp-server's pods_list / resources_list first POSTs a SelfSubjectAccessReview
("can I list pods cluster-wide?"); when that fails it silently lists only the kubeconfig's
namespace. snapshot serve neither advertises authorization.k8s.io in discovery nor accepts the
POST, so without this shim pods_list answers with the pods of `default` only.

What it changes, and nothing else:
  GET  /apis                                  APIGroupList + authorization.k8s.io/v1
  GET  /apis/authorization.k8s.io/v1          APIResourceList with selfsubjectaccessreviews
  POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews   -> 201 status.allowed=true
Every other request is forwarded as is (method, path, query, Accept/Content-Type) and the
response streamed back. Loopback only.

Usage: python kube_shim.py --upstream http://127.0.0.1:PORT  (prints "port N" when listening)
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

AUTHZ_GROUP = {
    "name": "authorization.k8s.io",
    "versions": [{"groupVersion": "authorization.k8s.io/v1", "version": "v1"}],
    "preferredVersion": {"groupVersion": "authorization.k8s.io/v1", "version": "v1"},
}
AUTHZ_RESOURCES = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": "authorization.k8s.io/v1",
    "resources": [
        {"name": "selfsubjectaccessreviews", "singularName": "selfsubjectaccessreview", "namespaced": False,
         "kind": "SelfSubjectAccessReview", "verbs": ["create"]}
    ],
}
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "host", "content-length"}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    upstream: urllib.parse.SplitResult
    local = threading.local()

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send_json(self, code: int, obj: dict) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _conn(self) -> http.client.HTTPConnection:
        c = getattr(self.local, "conn", None)
        if c is None:
            c = self.local.conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=300)
        return c

    def _forward(self, body: bytes | None):
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        for attempt in (0, 1):
            c = self._conn()
            try:
                c.request(self.command, self.path, body=body, headers=headers)
                return c.getresponse()
            except (http.client.HTTPException, OSError):
                c.close()
                self.local.conn = None
                if attempt:
                    raise

    def _handle(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        path = urllib.parse.urlsplit(self.path).path.rstrip("/")
        if path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" and self.command == "POST":
            return self._send_json(201, {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                                         "metadata": {}, "spec": {}, "status": {"allowed": True, "reason": "bench shim"}})
        if path == "/apis/authorization.k8s.io/v1" and self.command == "GET":
            return self._send_json(200, AUTHZ_RESOURCES)
        resp = self._forward(body)
        if path == "/apis" and self.command == "GET":
            data = resp.read()
            try:
                doc = json.loads(data)
            except ValueError:
                doc = None
            if isinstance(doc, dict) and doc.get("kind") == "APIGroupList":
                doc["groups"] = [g for g in doc.get("groups", []) if g.get("name") != AUTHZ_GROUP["name"]] + [AUTHZ_GROUP]
                return self._send_json(resp.status, doc)
            return self._copy(resp, data)
        self._copy(resp, None)

    def _copy(self, resp: http.client.HTTPResponse, data: bytes | None) -> None:
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        if data is not None:
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        length = resp.getheader("Content-Length")
        if length is not None:
            self.send_header("Content-Length", length)
            self.end_headers()
            while chunk := resp.read(1 << 20):
                self.wfile.write(chunk)
        else:  # chunked / streaming (watch): re-chunk as it arrives
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            while chunk := resp.read1(1 << 20):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    up = urllib.parse.urlsplit(a.upstream)
    assert up.hostname in ("127.0.0.1", "localhost", "::1"), "loopback upstream only"
    Handler.upstream = up
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    print(f"port {srv.server_address[1]}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
