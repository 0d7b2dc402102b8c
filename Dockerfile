# syntax=docker/dockerfile:1
# evolink-mcp over streamable HTTP on 0.0.0.0:8000. A token is required:
#   docker run -p 8000:8000 -e EVOLINK_API_KEY=... -e EVOLINK_MCP_TOKEN=... -v evolink:/data evolink-mcp
# CI reproduces the build stage's commands in a fresh virtualenv (tests/packaging/test_dockerfile.py).
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY server ./server
RUN python -m venv /opt/venv
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check .
RUN /opt/venv/bin/python -m compileall -q /opt/venv/lib

FROM python:${PYTHON_VERSION}-slim
LABEL org.opencontainers.image.title="evolink-mcp" \
      org.opencontainers.image.description="MCP server for the Evolink image API (streamable HTTP on :8000, token required)" \
      org.opencontainers.image.url="https://evolink.ai" \
      org.opencontainers.image.licenses="MIT" \
      io.modelcontextprotocol.server.name="io.github.evolink/evolink-mcp"
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
