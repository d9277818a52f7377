# Image for the api and worker services of docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams streams
COPY schemas schemas
COPY sinks sinks
COPY api api
COPY ops ops
RUN pip install --no-cache-dir .
USER nobody
