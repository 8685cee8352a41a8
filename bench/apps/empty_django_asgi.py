"""The empty Django app of empty_django.py, served through ASGI: Django's
cost per request on its own under an ASGI server."""
import empty_django  # noqa: F401  (settings, URLs and the view)
from django.core.asgi import get_asgi_application

app = get_asgi_application()
