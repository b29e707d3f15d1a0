# One image for the three services; the command picks which one runs:
#   docker run aviso serve intake
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AVISO_HTTP_HOST=0.0.0.0 \
    AVISO_LOG_FORMAT=json

WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY services ./services
COPY deploy ./deploy
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --home /app aviso \
    && mkdir -p /app/var && chown aviso /app/var
USER aviso

EXPOSE 8001 8002 8003
ENTRYPOINT ["aviso"]
CMD ["serve", "intake"]
