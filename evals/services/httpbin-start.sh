# Start the httpbin stand-in at evaluation time (network off): gunicorn on 127.0.0.1:80 and
# :443 (gthread workers keep connections alive and accept chunked uploads, which Werkzeug's
# dev server does not), the hosts requests' tests call pointed at it, and 10.0.0.0/8 routed
# into loopback so that connects to the TARPIT (10.255.255.1) time out instead of failing
# at once. The route needs the NET_ADMIN capability in the container's own namespace.
# This text goes into eval.sh as it is (which runs under `set -uxo pipefail`).
here=/opt/moe-services/httpbin
export REQUESTS_CA_BUNDLE=$here/ca-bundle.pem
grep -q ' httpbin.org' /etc/hosts || echo '127.0.0.1 httpbin.org www.httpbin.org www.google.co.uk' >> /etc/hosts
ip route add 10.0.0.0/8 dev lo 2>/dev/null \
    || echo "moe-agent: cannot route 10.0.0.0/8 to loopback (no NET_ADMIN?); TARPIT tests will fail fast"
serve() {
    "$here/venv/bin/gunicorn" --daemon --bind "127.0.0.1:$1" --worker-class gthread --threads 8 \
        --keep-alive 30 --pid "/tmp/httpbin-$1.pid" "${@:2}" httpbin:app
}
serve 80
serve 443 --certfile "$here/cert.pem" --keyfile "$here/key.pem"
python3 - <<'PY'
import socket, sys, time
deadline = time.monotonic() + 30
for port in (80, 443):
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit(f"moe-agent: httpbin did not start on port {port}")
            time.sleep(0.1)
PY
