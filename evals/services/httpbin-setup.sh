# The httpbin stand-in for psf/requests' tests, set up in the environment layer (network on).
# $1 is the test virtualenv. httpbin gets its own virtualenv so it never changes what the
# tests import; the self-signed certificate is added to certifi in the test virtualenv,
# because requests' Session.send trusts certifi's bundle and ignores REQUESTS_CA_BUNDLE.
# Nothing here runs at evaluation: httpbin-start.sh is copied into each eval script.
set -euxo pipefail
test_venv=$1
here=/opt/moe-services/httpbin
python3 -m venv "$here/venv"
"$here/venv/bin/python" -m pip install --no-cache-dir 'httpbin==0.10.2' 'gunicorn==23.0.0'
openssl req -x509 -newkey rsa:2048 -nodes -days 36500 -subj /CN=httpbin.org \
    -addext "subjectAltName=DNS:httpbin.org,DNS:www.httpbin.org,DNS:localhost,IP:127.0.0.1" \
    -keyout "$here/key.pem" -out "$here/cert.pem"
"$test_venv/bin/python" -m pip install --no-cache-dir certifi
bundle=$("$test_venv/bin/python" -c 'import certifi; print(certifi.where())')
cat "$here/cert.pem" >> "$bundle"
# Old requests (2.3 and before) trust their own vendored cacert.pem instead; they read
# REQUESTS_CA_BUNDLE, which the start script points here.
cp "$bundle" "$here/ca-bundle.pem"
