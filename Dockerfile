# One image for every Shopweave process: `shop api`, `shop worker`, `shop migrate`.
# Production uses external PostgreSQL, Redis and Temporal (see docker-compose.yml);
# the embedded-server wheels are installed but never started in a container.
FROM python:3.12-slim AS build
WORKDIR /src
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml constraints.txt README.md ./
COPY api ./api
COPY models ./models
COPY services ./services
COPY workflows ./workflows
COPY activities ./activities
COPY workers ./workers
COPY temporal ./temporal
COPY integrations ./integrations
COPY core ./core
COPY cli ./cli
COPY migrations ./migrations
COPY bench ./bench
RUN python -m venv /opt/shop && /opt/shop/bin/pip install -c constraints.txt .

FROM python:3.12-slim
RUN useradd --create-home --uid 10001 shop
COPY --from=build /opt/shop /opt/shop
ENV PATH=/opt/shop/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SHOP_ENV=production \
    SHOP_API_HOST=0.0.0.0 \
    SHOP_API_PORT=3001 \
    LOG_FORMAT=json
USER shop
WORKDIR /home/shop
EXPOSE 3001
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3001/health', timeout=2).status == 200 else 1)"
CMD ["shop", "api"]
