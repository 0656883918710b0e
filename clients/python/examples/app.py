#!/usr/bin/env python3
"""A tiny photo-tagging application that asks predictd for suggestions.

It serves its own page, and `POST /suggest?x=..&y=..` with the photo as the
body answers `{"suggestions": {...}, "reason": null}`, or, when predictd is
down, slow, overloaded or reloading, `{"suggestions": {}, "reason": "..."}`:
always at once, always 200. Suggestions are a help, never a requirement.

    python3 app.py --socket /run/predictd/predictd.sock --port 8000
"""

import argparse
import json
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from predictd_client import Client

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>Tag a photo</title></head>
<body><h1>Tag a photo</h1>
<input type="file" id="f" accept="image/*"><p>Click on the photo.</p>
<img id="i" style="max-width:100%"><pre id="o"></pre>
<script>
const f = document.getElementById('f'), i = document.getElementById('i');
f.onchange = () => { i.src = URL.createObjectURL(f.files[0]); };
i.onclick = async (e) => {
  const x = Math.round(e.offsetX * i.naturalWidth / i.width);
  const y = Math.round(e.offsetY * i.naturalHeight / i.height);
  const r = await fetch(`/suggest?x=${x}&y=${y}`, {method: 'POST', body: f.files[0]});
  document.getElementById('o').textContent = JSON.stringify(await r.json(), null, 1);
};
</script></body></html>
"""


def make_handler(client):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def send(self, status, content_type, body):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/":
                self.send(200, "text/html; charset=utf-8", PAGE)
            else:
                self.send(404, "text/plain", b"not found\n")

        def do_POST(self):
            url = urllib.parse.urlsplit(self.path)
            if url.path != "/suggest":
                self.send(404, "text/plain", b"not found\n")
                return
            query = urllib.parse.parse_qs(url.query)
            photo = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            try:
                x, y = float(query["x"][0]), float(query["y"][0])
            except (KeyError, ValueError):
                self.send(400, "application/json", b'{"error": "x and y are required"}')
                return
            r = client.predict(photo, x, y)
            answer = {"suggestions": r.predictions, "id": r.id, "reason": r.error}
            self.send(200, "application/json", json.dumps(answer).encode())

    return Handler


def serve(socket_path, port, timeout=0.5, host="127.0.0.1"):
    """Starts the application; returns the server (call serve_forever)."""
    client = Client(socket_path, timeout=timeout)
    return ThreadingHTTPServer((host, port), make_handler(client))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--socket", default="/run/predictd/predictd.sock")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--timeout", type=float, default=0.5, help="seconds for predictd's part")
    args = p.parse_args()
    server = serve(args.socket, args.port, args.timeout)
    print(f"http://127.0.0.1:{server.server_address[1]}/")
    server.serve_forever()


if __name__ == "__main__":
    main()
