# Switchboard: one image for web, worker, beat and the migrate step (docker-compose.yml runs them).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VAR_DIR=/app/var \
    STATIC_ROOT=/app/static \
    PROMETHEUS_MULTIPROC_DIR=/run/switchboard-metrics

WORKDIR /app
COPY requirements.lock .
RUN pip install --require-hashes -r requirements.lock

COPY . .
# collectstatic needs settings, not a database or any secret of the deployment.
# (A DATABASE_URL keeps the settings from starting the embedded PostgreSQL; nothing connects to it.)
RUN DJANGO_SECRET_KEY=build-only DATABASE_URL=postgres://build@127.0.0.1/build \
    python manage.py collectstatic --noinput \
    && useradd --system --uid 10001 --home /app switchboard \
    && mkdir -p /app/var /app/var/media /run/switchboard-metrics \
    && chown -R switchboard /app/var /run/switchboard-metrics
USER switchboard

EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4", "--access-logfile", "-"]
