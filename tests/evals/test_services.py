"""The network stand-ins of evals/services, set up and started in a container as the images do.

The sphinx-links stand-in must answer every URL sphinx's tests fetch the way those tests
expect upstream to answer (the table below, read from sphinx 1.5-8.1's
tests/test_build_linkcheck.py, tests/roots/test-linkcheck/links.txt, tests/test_build_latex.py
and tests/roots/test-images/index.rst), with the network off, over certificates the test
process trusts: certifi's bundle (requests) and the system store (urllib).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from evals.images import service_data, service_script
from evals.recipes import recipe_for

# (url, anchor or "", what sphinx's tests expect): status after redirects, the redirect's code
# (0: none), whether the anchor is on the page (None: not looked at).
SPHINX_FETCHES: list[tuple[str, str, int, int, bool | None]] = [
    ("https://www.google.com/", "top", 200, 0, False),  # "Anchor 'top' not found"
    ("https://www.google.com", "", 200, 0, None),  # '#!bar' ignored: "working"
    ("https://www.google.com/image.png", "", 404, 0, None),  # "404 Client Error: Not Found for url"
    ("https://www.google.com/image2.png", "", 404, 0, None),
    ("https://www.google.com/NOT_EXIST.PNG", "", 404, 0, None),  # test_latex_images: "[404]"
    ("http://www.sphinx-doc.org/en/1.7/intro.html", "does-not-exist", 200, 0, False),  # 1.8-3.5
    ("http://www.sphinx-doc.org/en/master/index.html", "does-not-exist", 200, 0, False),  # 4.0-6.0
    ("https://www.sphinx-doc.org/", "", 200, 302, None),  # 5.2-6.0: redirected, 302, to /en/master/
    ("https://www.w3.org/TR/2006/REC-xml-names-20060816/", "defaulting", 200, 0, True),
    ("https://github.com/sphinx-doc/sphinx", "user-content-documentation", 200, 0, True),  # 4.1
    ("https://github.com/sphinx-doc/sphinx", "user-content-testing", 200, 0, True),
    ("https://github.com/sphinx-doc/sphinx/blob/4.x/sphinx/__init__.py", "L2", 200, 0, True),  # 4.2-5.1
    ("https://github.com/sphinx-doc/sphinx/blob/master/sphinx/__init__.py", "L2", 200, 0, True),  # 5.0-6.0
    ("https://www.python.org/static/img/python-logo.png", "", 200, 0, None),  # test_latex_images
    ("http://example.com/", "top", 200, 0, False),  # 1.5-2.3
    ("http://example.com/image.png", "", 404, 0, None),  # 2.0-2.3
]

# Runs in the container: fetch each URL through certifi's bundle (as requests does) and
# through the system store (as urllib's default does), follow redirects, look for the
# anchor as sphinx's AnchorCheckParser does (an `id` or `name` attribute).
CLIENT = r'''
import json, socket, ssl, sys, urllib.error, urllib.request
from html.parser import HTMLParser
import certifi

class Anchors(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found = set()
    def handle_starttag(self, tag, attrs):
        self.found.update(value for key, value in attrs if key in ("id", "name"))

class Redirects(urllib.request.HTTPRedirectHandler):
    codes = []
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        Redirects.codes.append(code)
        return super().redirect_request(req, fp, code, msg, headers, newurl)

def fetch(url, context, method="GET"):
    Redirects.codes = []
    opener = urllib.request.build_opener(Redirects, urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(urllib.request.Request(url, method=method), timeout=10) as response:
            status, body, final, kind = response.status, response.read(), response.geturl(), response.headers.get_content_type()
    except urllib.error.HTTPError as exc:
        status, body, final, kind = exc.code, b"", url, ""
    parser = Anchors()
    if kind == "text/html":
        parser.feed(body.decode())
    return {"status": status, "redirect": Redirects.codes[-1] if Redirects.codes else 0, "final": final,
            "anchors": sorted(parser.found), "type": kind, "png": body.startswith(b"\x89PNG")}

contexts = {"certifi": ssl.create_default_context(cafile=certifi.where()), "system": ssl.create_default_context()}
out = {name: {url: fetch(url, context) for url in json.loads(sys.argv[1])} for name, context in contexts.items()}
out["head"] = {url: fetch(url, contexts["certifi"], "HEAD")["status"] for url in json.loads(sys.argv[1])}
try:
    fetch("https://localhost:7777/doesnotexist", contexts["certifi"])
    out["localhost:7777"] = "answered"
except urllib.error.URLError as exc:
    out["localhost:7777"] = type(exc.reason).__name__
try:
    socket.getaddrinfo("pypi.org", 443)
    out["pypi.org"] = "resolved"
except OSError:
    out["pypi.org"] = "unresolved"
print(json.dumps(out))
'''


def test_sphinx_recipe_starts_the_links_stand_in() -> None:
    for version in ("1.5", "3.4", "5.0", "7.2", "8.1"):  # the latex image test fetches python.org up to 8.1
        assert recipe_for("sphinx-doc/sphinx", version).services == ["sphinx-links"]
    files = service_data("sphinx-links")
    assert set(files) == {"/tmp/sphinx-links-server.py", "/tmp/sphinx-links-sites.json"}
    hosts = json.loads(files["/tmp/sphinx-links-sites.json"])["hosts"]
    assert {url.split("/")[2] for url, *_ in SPHINX_FETCHES} == set(hosts)  # every host served is one a test reaches


@pytest.mark.docker
def test_sphinx_links_stand_in_answers_as_the_tests_expect(make_sandbox: Callable[..., Any]) -> None:
    # root, no capability, no network: what an instance container of the sphinx recipe gets
    box = make_sandbox(user="root")
    for path, data in service_data("sphinx-links").items():
        box.write_file(path, data)
    box.write_file("/tmp/sphinx-links-setup.sh", service_script("sphinx-links", "setup").encode())
    box.write_file("/tmp/client.py", CLIENT.encode())
    # the test virtualenv: requests' certifi stands for itself as a module with where()
    made = box.run("python3 -m venv --without-pip /opt/test-venv && site=$(/opt/test-venv/bin/python -c "
                   "'import sysconfig; print(sysconfig.get_paths()[\"purelib\"])') && mkdir -p $site/certifi && "
                   "echo 'def where(): return \"/opt/test-venv/cacert.pem\"' > $site/certifi/__init__.py && "
                   "touch /opt/test-venv/cacert.pem", timeout=120)
    assert made.ok, made.output
    setup = box.run("bash /tmp/sphinx-links-setup.sh /opt/test-venv", timeout=300)
    assert setup.ok, setup.output
    start = box.run(service_script("sphinx-links", "start"), timeout=120)
    assert start.ok, start.output
    urls = list(dict.fromkeys(url for url, *_ in SPHINX_FETCHES))
    ran = box.run(f"/opt/test-venv/bin/python /tmp/client.py '{json.dumps(urls)}'", timeout=300)
    assert ran.ok, ran.output
    seen = json.loads(ran.output.strip().splitlines()[-1])
    for trust in ("certifi", "system"):
        for url, anchor, status, redirect, present in SPHINX_FETCHES:
            got = seen[trust][url]
            assert (got["status"], got["redirect"]) == (status, redirect), (trust, url, got)
            if present is not None:
                assert (anchor in got["anchors"]) == present, (trust, url, got)
    assert seen["certifi"]["https://www.sphinx-doc.org/"]["final"] == "https://www.sphinx-doc.org/en/master/"
    logo = seen["certifi"]["https://www.python.org/static/img/python-logo.png"]
    assert logo["type"] == "image/png" and logo["png"]
    assert seen["certifi"]["https://www.w3.org/TR/2006/REC-xml-names-20060816/"]["final"].startswith("https://www.w3.org/")
    # HEAD (linkcheck tries it first) answers as GET does
    assert all(seen["head"][url] == seen["certifi"][url]["status"] for url in urls)
    assert seen["localhost:7777"] == "ConnectionRefusedError"  # "Max retries exceeded with url: /doesnotexist"
    assert seen["pypi.org"] == "unresolved"  # nothing else is reachable
