"""The dashboard: server-rendered pages over the same scope and analytics as the API."""
