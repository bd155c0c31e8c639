# Tocsin: builds and runs the service. With no REDIS_URL it starts its embedded Redis under /data.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY service ./service
COPY routing ./routing
COPY templates ./templates
COPY config ./config
RUN pip install --no-cache-dir -e .
ENV TOCSIN_DATA_DIR=/data
VOLUME ["/data"]
EXPOSE 9093
ENTRYPOINT ["tocsin"]
CMD ["serve", "--config", "/app/config/tocsin.yml", "--listen", "0.0.0.0:9093"]
