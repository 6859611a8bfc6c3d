"""A real self-signed CA certificate for tests that need a CA bundle OpenSSL accepts.

Made once with `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 36500
-subj "/CN=moe-agent test CA"`; its key was thrown away (nothing is ever signed with it).
"""

CA_PEM = b"""-----BEGIN CERTIFICATE-----
MIIBjzCCATWgAwIBAgIUasUTD1IeOFgOzE9FjWWCgLBPgvswCgYIKoZIzj0EAwIw
HDEaMBgGA1UEAwwRbW9lLWFnZW50IHRlc3QgQ0EwIBcNMjYxMTMwMTUyNTA5WhgP
MjEyNjExMDYxNTI1MDlaMBwxGjAYBgNVBAMMEW1vZS1hZ2VudCB0ZXN0IENBMFkw
EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAESIUO5OPsMdjVJYIFSwWTw+h1HElCdYg1
W6FISeF00FDhWdsTRAAXxfZhfgG7i/JE1YftJ8iI7YD48cJ48oXRfKNTMFEwHQYD
VR0OBBYEFD9qUVKFfPCqApwouOXdglB2TnTHMB8GA1UdIwQYMBaAFD9qUVKFfPCq
ApwouOXdglB2TnTHMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIg
B/aaBawUObsyLE05dz8vmlVxnMKCq4Pe4XYchtIzdb0CIQDY2EhPPAjAnU1aC05Q
1cUqigkf2XP/9o1O4s+kyzwwbQ==
-----END CERTIFICATE-----
"""
