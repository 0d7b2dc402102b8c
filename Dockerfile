# syntax=docker/dockerfile:1
# evolink-mcp over streamable HTTP on 0.0.0.0:8000. A token is required:
#   docker run -p 8000:8000 -e EVOLINK_API_KEY=... -e EVOLINK_MCP_TOKEN=... -v evolink:/data evolink-mcp
# CI reproduces the build stage's commands in a fresh virtualenv (tests/packaging/test_dockerfile.py).
# The base image is pinned by digest (the multi-platform index of that tag): a rebuild gets the same
# Python and Debian. To update, take the new digest from `docker buildx imagetools inspect <tag>`.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
RUN python -m venv /opt/venv
# The dependencies (with the HTTP speed-ups and, for replicas, the PostgreSQL journal's driver) in a layer of
# their own: only a pyproject.toml change rebuilds it, a code change reinstalls just the package below.
COPY pyproject.toml ./
RUN python -c 'import tomllib; project = tomllib.load(open("pyproject.toml", "rb"))["project"]; print("\n".join(project["dependencies"] + project["optional-dependencies"]["http"] + project["optional-dependencies"]["postgres"]))' > requirements.txt \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -r requirements.txt
COPY README.md ./
COPY server ./server
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps .
RUN /opt/venv/bin/python -m compileall -q /opt/venv/lib

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="evolink-mcp" \
      org.opencontainers.image.description="MCP server for the Evolink image API (streamable HTTP on :8000, token required)" \
      org.opencontainers.image.url="https://evolink.ai" \
      org.opencontainers.image.licenses="MIT" \
      io.modelcontextprotocol.server.name="io.github.evolink/evolink-mcp"
# Images are saved in the server's output folder inside the volume, owned by the user the server runs as:
# it writes them there and reads them back when a client passes one to edit.
RUN useradd --create-home --uid 10001 evolink \
    && mkdir -p /data/images /data/state \
    && chown -R evolink:evolink /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    EVOLINK_OUTPUT_DIR=/data/images \
    EVOLINK_STATE_DIR=/data/state
VOLUME ["/data"]
USER evolink
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["evolink-mcp"]
CMD ["serve", "--transport", "streamable-http", "--host", "0.0.0.0", "--port", "8000"]
