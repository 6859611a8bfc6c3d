# Start the sphinx-links stand-in at evaluation time (network off): the hosts of
# sites.json pointed at 127.0.0.1 in /etc/hosts, and server.py answering for them on :80
# and :443 (binding them needs no capability: Docker sets ip_unprivileged_port_start=0).
# localhost:7777 stays closed, as the tests' "Complete nonsense" link expects.
# This text goes into eval.sh as it is (which runs under `set -uxo pipefail`).
here=/opt/moe-services/sphinx-links
grep -qxF "$(cat "$here/hosts")" /etc/hosts || cat "$here/hosts" >> /etc/hosts
/usr/bin/python3 "$here/server.py" "$here/sites.json" "$here/cert.pem" "$here/key.pem" \
    > /tmp/sphinx-links.log 2>&1 < /dev/null \
    || { echo "moe-agent: the sphinx-links stand-in did not start:"; cat /tmp/sphinx-links.log; }
