"""The HTTP shell: routers, request/response schemas, auth and error rendering. A route parses,
authorises, calls one service (app.services) and renders; it never imports the workers or the
cluster adapter."""
