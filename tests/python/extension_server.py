"""An extension API server for tests/apiserver_aggregation.rs, behind skiff's aggregator: HTTPS
with the certificate the test made, and the front proxy's rules (k8s.io/apiserver's
request-header authenticator): a request is believed only when it comes with a client
certificate that verifies against the front-proxy CA (`requestheader-client-ca-file` from
`kube-system/extension-apiserver-authentication`, given here as a file); its user is then read
from X-Remote-User, X-Remote-Uid, X-Remote-Group and X-Remote-Extra-*. Anything else is 401.
Prints its port, then serves until killed.

    python3 extension_server.py CERT KEY FRONT_PROXY_CA

Serves the group version wardle.example.com/v1alpha1 with one namespaced resource, `echoes`
(kind Echo, verbs get/list/create/watch): an Echo answers with who asked, how, and what for.
"""

import http.server
import json
import socketserver
import ssl
import sys
import time
import urllib.parse

GV = "/apis/wardle.example.com/v1alpha1"
RESOURCES = {
    "kind": "APIResourceList",
    "apiVersion": "v1",
    "groupVersion": "wardle.example.com/v1alpha1",
    "resources": [
        {"name": "echoes", "singularName": "echo", "namespaced": True, "kind": "Echo",
         "verbs": ["create", "get", "list", "watch"], "shortNames": ["ec"]},
        {"name": "echoes/status", "singularName": "", "namespaced": True, "kind": "Echo",
         "verbs": ["get"]},
    ],
}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def identity(self):
        cert = self.connection.getpeercert()
        if not cert:
            return None
        cn = [v for rdn in cert.get("subject", ()) for (k, v) in rdn if k == "commonName"]
        extra = {}
        for name, value in self.headers.items():
            if name.lower().startswith("x-remote-extra-"):
                key = urllib.parse.unquote(name[len("x-remote-extra-"):].lower())
                extra.setdefault(key, []).append(value)
        return {
            "proxy": cn[0] if cn else "",
            "user": self.headers.get("X-Remote-User", ""),
            "uid": self.headers.get("X-Remote-Uid", ""),
            "groups": self.headers.get_all("X-Remote-Group") or [],
            "extra": extra,
        }

    def send_json(self, code, value):
        body = json.dumps(value).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def echo(self, who, name, namespace, body=None):
        url = urllib.parse.urlsplit(self.path)
        return {
            "apiVersion": "wardle.example.com/v1alpha1", "kind": "Echo",
            "metadata": {"name": name, "namespace": namespace},
            "who": who, "method": self.command, "path": url.path, "query": url.query,
            "accept": self.headers.get("Accept", ""),
            "authorization": self.headers.get("Authorization", ""),
            "body": body,
        }

    def handle_any(self, body=None):
        who = self.identity()
        if who is None or not who["user"]:
            return self.send_json(401, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                        "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/")
        query = urllib.parse.parse_qs(url.query)
        if path == GV:
            return self.send_json(200, RESOURCES)
        parts = path[len(GV):].strip("/").split("/") if path.startswith(GV) else []
        if len(parts) >= 3 and parts[0] == "namespaces" and parts[2] == "echoes":
            namespace = parts[1]
            if len(parts) == 4:
                return self.send_json(200, self.echo(who, parts[3], namespace, body))
            if len(parts) == 3 and body is not None:
                name = (body.get("metadata") or {}).get("name", "")
                return self.send_json(201, self.echo(who, name, namespace, body))
            if len(parts) == 3 and query.get("watch") == ["true"]:
                # Three events, a moment apart, in chunks: the proxy must stream them.
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for i in range(3):
                    event = json.dumps({"type": "ADDED", "object": self.echo(who, f"e{i}", namespace)}) + "\n"
                    data = event.encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                    self.wfile.flush()
                    time.sleep(0.2)
                self.wfile.write(b"0\r\n\r\n")
                return
            if len(parts) == 3:
                return self.send_json(200, {"apiVersion": "wardle.example.com/v1alpha1", "kind": "EchoList",
                                            "metadata": {"resourceVersion": "1"},
                                            "items": [self.echo(who, "listed", namespace)]})
        return self.send_json(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                    "message": "the server could not find the requested resource",
                                    "reason": "NotFound", "code": 404})

    def do_GET(self):
        self.handle_any()

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        self.handle_any(json.loads(self.rfile.read(length) or b"{}"))


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    cert, key, front_proxy_ca = sys.argv[1:4]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.load_verify_locations(front_proxy_ca)
    # A certificate is asked for, not demanded: without one the request is 401, as upstream.
    context.verify_mode = ssl.CERT_OPTIONAL
    server = Server(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
