"""Loopback HTTP server for tests/integration/test_interpose.sh.

Usage: server.py PORTFILE HITSFILE
Binds 127.0.0.1 on an ephemeral port, writes the port to PORTFILE once it
listens, answers every GET with a fixed body and rewrites HITSFILE with the
number of requests served so far (written to a temporary name, then
renamed, so a reader never sees a partial number).
"""
import http.server
import os
import sys
import threading

BODY = b"hello from the interpose loopback\n"
port_file, hits_file = sys.argv[1], sys.argv[2]
lock = threading.Lock()
hits = 0


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        global hits
        # Counted before the answer goes out: a client that has its answer
        # must find its hit counted (on a loaded machine it raced).
        with lock:
            hits += 1
            tmp = hits_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(str(hits))
            os.replace(tmp, hits_file)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(port_file + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.replace(port_file + ".tmp", port_file)
srv.serve_forever()
