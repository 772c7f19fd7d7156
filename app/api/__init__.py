"""The HTTP shell: routers, request/response schemas, auth and error rendering."""
