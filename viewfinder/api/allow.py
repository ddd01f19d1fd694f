"""Which methods a path answers, for the Allow header of OPTIONS and 405 replies.

Starlette answers 405 with the methods of the first route whose path matched, so a path
served by two routes (GET and DELETE on /v1/images/{image_id}) claimed only one of them.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Match

_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route answers on the request's path (and OPTIONS), sorted; empty
    when no route has this path."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]
    return [*allowed, "OPTIONS"] if allowed else []
