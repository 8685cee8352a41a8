"""A tiny WSGI app for gunicorn: every request does some CPU work."""


def handle(path):
    total = 0
    for i in range(50_000):
        total += i % 7  # LINE:handle
    return f"{path} {total}\n".encode()


def app(environ, start_response):
    body = handle(environ.get("PATH_INFO", "/"))
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
