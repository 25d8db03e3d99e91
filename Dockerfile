# syntax=docker/dockerfile:1
# The server as an image: docker build -t telemed .  (docs/operations.md; compose.yaml adds
# Redis and coturn). tests/test_wheel.py runs these same steps without a container.

# --- build: the locked dependencies and our wheel (with the C fan-out step) as wheels ---
FROM python:3.12-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY requirements-serve.txt ./
RUN pip wheel --no-cache-dir --wheel-dir /wheels -r requirements-serve.txt
# hls.js, which the trainee page loads from the server itself, pinned by its lockfile
COPY clients/web/vendor/package.json clients/web/vendor/package-lock.json clients/web/vendor/
RUN npm ci --prefix clients/web/vendor --no-audit --no-fund --loglevel=error
COPY . .
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- run: no compiler, no test tools, not root ---
FROM python:3.12-slim-bookworm
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/telemed --shell /usr/sbin/nologin telemed \
 && install -d -o telemed -g telemed -m 0700 /var/lib/telemed
COPY --from=build /src/requirements-serve.txt /tmp/
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links /wheels -c /tmp/requirements-serve.txt telemed \
 && rm /tmp/requirements-serve.txt
# Every setting is also an environment variable (telemed serve --help); these suit a container.
ENV TELEMED_HOST=0.0.0.0 \
    TELEMED_PORT=8080 \
    TELEMED_DATA_DIR=/var/lib/telemed \
    PYTHONUNBUFFERED=1
VOLUME ["/var/lib/telemed"]
EXPOSE 8080
USER telemed
WORKDIR /var/lib/telemed
# /healthz answers 503 while draining after SIGTERM (signaling/shutdown.py).
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, ssl, urllib.request; tls = bool(os.environ.get('TELEMED_TLS_CERT')); urllib.request.urlopen(('https' if tls else 'http') + '://127.0.0.1:' + os.environ.get('TELEMED_PORT', '8080') + '/healthz', timeout=4, context=ssl._create_unverified_context() if tls else None)"]
# SIGTERM drains: clients are told to reconnect elsewhere, recordings close, exit within
# TELEMED_SHUTDOWN_TIMEOUT (8 s); give `docker stop` more than that (compose: stop_grace_period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["telemed"]
CMD ["serve"]
