"""An admission webhook server for tests/apiserver_webhooks.rs: HTTPS with the certificate the
test made, one behaviour per path. Prints its port, then serves until killed.

    python3 webhook_server.py CERT KEY

POST paths answer AdmissionReviews:
  /allow     allows everything (the benchmark's no-op webhook)
  /validate  refuses objects labelled `deny` (code 403, a message; for a deletion, the
             object being deleted), warns about ones
             labelled `warn`, and adds an audit annotation
  /mutate    adds the label `mutated: "yes"` with a JSONPatch
  /slow      answers after 5 seconds
GET /last answers the last AdmissionReview request received, /count how many were.
"""

import base64
import http.server
import json
import ssl
import sys
import threading
import time

LOCK = threading.Lock()
STATE = {"last": None, "count": 0}


def answer(request, path):
    uid = request["uid"]
    # A deletion has no new object: its labels are the old one's.
    obj = request.get("object") or request.get("oldObject") or {}
    labels = (obj.get("metadata") or {}).get("labels") or {}
    response = {"uid": uid, "allowed": True}
    if path == "/validate":
        if "deny" in labels:
            response["allowed"] = False
            response["status"] = {
                "code": 403,
                "reason": "Forbidden",
                "message": "the label deny is not allowed here",
            }
        if "warn" in labels:
            response["warnings"] = ["this object carries the warn label"]
        response["auditAnnotations"] = {"checked": "yes"}
    elif path == "/mutate":
        if labels:
            patch = [{"op": "add", "path": "/metadata/labels/mutated", "value": "yes"}]
        else:
            patch = [{"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}]
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    elif path == "/slow":
        time.sleep(5)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with LOCK:
            if self.path == "/last":
                self.reply(STATE["last"])
            else:
                self.reply(STATE["count"])

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        review = json.loads(self.rfile.read(length))
        path = self.path.split("?")[0]
        with LOCK:
            STATE["count"] += 1
            if path != "/allow":
                STATE["last"] = dict(review["request"], path=self.path)
        self.reply(answer(review["request"], path))


class Server(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A client that gave up (the API server's timeout, /slow) is no error here.
        pass


def main():
    cert, key = sys.argv[1], sys.argv[2]
    server = Server(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
