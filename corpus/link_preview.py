# corpus: planted
# story: a Flask link-preview service fetches every shared URL from a slow upstream site to read its title; two sync gunicorn workers serve eight concurrent clients
# needs: flask, gunicorn
# run: gunicorn --workers 2 link_preview:app
import sys
import threading
import time
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from flask import Flask, abort, jsonify, request

app = Flask(__name__)
FETCH_TIMEOUT = 5.0
MAX_BYTES = 64 * 1024


class HeadParser(HTMLParser):
    """Collects the <title> and the og: meta tags of a page."""

    def __init__(self):
        super().__init__()
        self.meta = {}
        self._in_title = False
        self.title = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "title":
            self._in_title = True
        elif tag == "meta" and attrs.get("property", "").startswith("og:"):
            self.meta[attrs["property"][3:]] = attrs.get("content", "")

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


def fetch_preview(url):
    req = urllib.request.Request(url, headers={"User-Agent": "link-preview/1.2"})
    with urllib.request.urlopen(req, timeout=FETCH_TIMEOUT) as resp:  # expect: PYDX-WORKER001
        body = resp.read(MAX_BYTES).decode("utf-8", "replace")
    parser = HeadParser()
    parser.feed(body)
    return {
        "url": url,
        "title": parser.title.strip(),
        "description": parser.meta.get("description", ""),
        "image": parser.meta.get("image"),
    }


@app.get("/preview")
def preview():
    url = request.args.get("url", "")
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        abort(400)
    return jsonify(fetch_preview(url))


class SlowBlog(BaseHTTPRequestHandler):
    """The upstream site: answers each article after 80 ms."""

    def do_GET(self):
        time.sleep(0.08)
        slug = self.path.rsplit("/", 1)[-1]
        page = (
            f"<html><head><title>Release notes {slug}</title>"
            f'<meta property="og:description" content="What changed in build {slug}">'
            f'<meta property="og:image" content="/img/{slug}.png"></head>'
            f"<body>{'<p>lorem ipsum</p>' * 40}</body></html>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args):
        pass


def generate_load(base_url, seconds, clients=8):
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), SlowBlog)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    blog = f"http://127.0.0.1:{upstream.server_address[1]}/articles"
    deadline = time.monotonic() + seconds
    done = [0] * clients

    def client(n):
        i = 0
        while time.monotonic() < deadline:
            target = urllib.parse.quote(f"{blog}/{n}-{i % 50}", safe="")
            with urllib.request.urlopen(f"{base_url}/preview?url={target}", timeout=30) as resp:
                resp.read()
            done[n] += 1
            i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    upstream.shutdown()
    print(f"{sum(done)} previews in {seconds:.0f} s")


if __name__ == "__main__" and sys.argv[1:2] == ["load"]:
    generate_load(sys.argv[2], float(sys.argv[3]))
