"""One function per flow, called by both the routes (app.api) and the workers (app.workers).

A route parses, authorises, calls one of these and renders; a worker's loop calls them on its
schedule. Here the transaction is owned, the wake-up signal poked, the cluster observed, the
audit entry written: nowhere else. Below: the store and the cluster adapter; above: the API
and the workers, which never import each other. See docs/architecture.md.
"""
