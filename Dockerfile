# Serving image: BentoML + onnxruntime over the exported bundle. No torch, runs as a non-root user.
#   docker build -t textclf-serve .   (needs artifacts/bundle/ from `make run`)
#   docker run --rm -p 3000:3000 textclf-serve
# To follow the champion instead of the bundle baked in, mount the release channel the package stage and
# `pipelines.rollback` publish to (shared by a fleet):
#   docker run --rm -p 3000:3000 -v /shared/textclf/releases:/releases:ro -e TEXTCLF_BUNDLE=/releases textclf-serve

# --- build stage: a virtual environment with only the `serve` extra -----------------------------------
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
# Only what the distribution needs to build: serving/ is the ground floor and imports no other package of ours.
COPY pyproject.toml README.md ./
COPY serving/ serving/
RUN /opt/venv/bin/pip install --no-cache-dir ".[serve]" \
    && /opt/venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is not None)"

# --- runtime stage -------------------------------------------------------------------------------------
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BENTOML_DO_NOT_TRACK=true \
    BENTOML_HOME=/home/app/bentoml \
    TEXTCLF_BUNDLE=/app/bundle \
    TEXTCLF_FEEDBACK_URL=sqlite:////data/feedback.db
RUN useradd --no-log-init --create-home --uid 10001 --user-group app \
    && mkdir /data && chown 10001:10001 /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=10001:10001 artifacts/bundle/ /app/bundle/
# The prediction log and feedback (SQLite) live here: mount a volume, or point TEXTCLF_FEEDBACK_URL at PostgreSQL.
VOLUME ["/data"]
USER 10001:10001
EXPOSE 3000
# Ready only once the model is loaded and a warm-up prediction passed (see serving/service.py).
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:3000/readyz', timeout=2).status != 200)"]
CMD ["bentoml", "serve", "serving.service:Classifier", "--host", "0.0.0.0", "--port", "3000"]
