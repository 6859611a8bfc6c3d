# The sphinx-links stand-in for the web pages sphinx's tests fetch (sphinx-links/sites.json
# says which and why), set up in the environment layer (network on). $1 is the test
# virtualenv. The server runs on the image's own python3 with the standard library only,
# so it never changes what the tests import. One self-signed certificate names every host
# of sites.json; it is trusted where the tests look: certifi's bundle in the test
# virtualenv (requests: linkcheck, remote images) and the system store (urllib: docutils'
# raw directive with :url:). Nothing here runs at evaluation: sphinx-links-start.sh does.
set -euxo pipefail
test_venv=$1
here=/opt/moe-services/sphinx-links
mkdir -p "$here"
mv /tmp/sphinx-links-server.py "$here/server.py"
mv /tmp/sphinx-links-sites.json "$here/sites.json"
hosts=$(/usr/bin/python3 -c 'import json, sys; print(" ".join(json.load(open(sys.argv[1]))["hosts"]))' "$here/sites.json")
echo "127.0.0.1 $hosts" > "$here/hosts"
openssl req -x509 -newkey rsa:2048 -nodes -days 36500 -subj "/CN=moe-agent sphinx-links stand-in" \
    -addext "subjectAltName=$(printf 'DNS:%s,' $hosts | sed 's/,$//')" \
    -keyout "$here/key.pem" -out "$here/cert.pem"
bundle=$("$test_venv/bin/python" -c 'import certifi; print(certifi.where())')
cat "$here/cert.pem" >> "$bundle"
cp "$here/cert.pem" /usr/local/share/ca-certificates/moe-sphinx-links.crt
update-ca-certificates
