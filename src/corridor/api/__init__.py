"""The HTTP API: ``create_app(settings)`` builds a FastAPI app over one store.

Routes are thin (``routes/<resource>.py``): they read the request, call down into
:mod:`corridor.ingest` and the store, and render. Every error leaves in one JSON shape
(:mod:`corridor.api.errors`).
"""
