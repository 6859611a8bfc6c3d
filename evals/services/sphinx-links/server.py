"""Serve the pages of sites.json on one http and one https port, by Host header.

The sphinx-links stand-in: sphinx's linkcheck and remote-image tests fetch real pages
(www.google.com, www.sphinx-doc.org, www.w3.org, github.com, www.python.org,
example.com). Offline, /etc/hosts points those names at 127.0.0.1 and this server
answers with what the tests expect upstream to answer: a page holding the anchors
(`id` attributes) they look for, a redirect, an image, or 404 for any other path.

Runs on the image's own python3 (3.9 or later, standard library only), never in the
test virtualenv. Usage: server.py SITES_JSON CERT KEY [HTTP_PORT HTTPS_PORT], ports 80
and 443 by default. It returns once both ports listen, leaving the server in the
background in its own session; a port it cannot bind fails it at once. Logs one line per
request on stderr.
"""

import base64
import html
import json
import os
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def page_response(page):
    """(status, headers, body bytes) for one sites.json entry; None is a 404."""
    if page is None:
        return 404, {"Content-Type": "text/html; charset=utf-8"}, b"<html><body><h1>404 Not Found</h1></body></html>"
    status = page.get("status", 200)
    headers = {}
    if "location" in page:
        headers["Location"] = page["location"]
    if "base64" in page:
        headers["Content-Type"] = page.get("type", "application/octet-stream")
        return status, headers, base64.b64decode(page["base64"])
    anchors = "".join(f'<p id="{html.escape(a)}">{html.escape(a)}</p>\n' for a in page.get("anchors", []))
    body = f"<!DOCTYPE html>\n<html><head><title>offline stand-in</title></head><body>\n{anchors}</body></html>\n"
    headers["Content-Type"] = "text/html; charset=utf-8"
    return status, headers, body.encode()


def handler_for(hosts):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.answer(with_body=True)

        def do_HEAD(self):
            self.answer(with_body=False)

        def answer(self, with_body):
            host = (self.headers.get("Host") or "").split(":", 1)[0].lower()
            path = self.path.split("?", 1)[0].split("#", 1)[0]
            status, headers, body = page_response(hosts.get(host, {}).get(path))
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def log_message(self, format, *args):
            sys.stderr.write(f"{self.headers.get('Host', '-') if self.headers else '-'} {format % args}\n")

    return Handler


def main(argv):
    sites, cert, key = argv[1:4]
    http_port, https_port = (int(p) for p in (argv[4:6] or (80, 443)))
    with open(sites, encoding="utf-8") as fh:
        hosts = json.load(fh)["hosts"]
    handler = handler_for(hosts)
    plain = ThreadingHTTPServer(("127.0.0.1", http_port), handler)
    secure = ThreadingHTTPServer(("127.0.0.1", https_port), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    secure.socket = context.wrap_socket(secure.socket, server_side=True)
    if os.fork():  # both ports listen: the parent returns and the eval script goes on
        os._exit(0)
    os.setsid()
    threading.Thread(target=plain.serve_forever, daemon=True).start()
    secure.serve_forever()


if __name__ == "__main__":
    main(sys.argv)
