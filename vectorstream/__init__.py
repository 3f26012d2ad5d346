"""VectorStream: stream e-commerce events from Kafka into Qdrant as embeddings."""

__version__ = "0.1.0"
