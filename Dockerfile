# Ciuic service image. Migrations run at start (`ciuic serve` applies them first, from the
# alembic.ini and migrations/ copied into the WORKDIR: the installed package does not hold them).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /srv/ciuic

COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
RUN pip install . && useradd --system --uid 10001 ciuic && mkdir -p /data && chown ciuic /data

USER ciuic
ENV CIUIC_HOST=0.0.0.0 CIUIC_PORT=8080 CIUIC_DATABASE_URL=sqlite+aiosqlite:////data/ciuic.db
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/readyz').status != 200)"
CMD ["ciuic", "serve"]
