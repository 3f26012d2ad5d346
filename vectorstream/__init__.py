"""VectorStream: stream e-commerce events from Kafka into Qdrant as embeddings."""
import logging as _logging

__version__ = "0.1.0"


class _WithoutBeamsGcpNotice(_logging.Filter):
    """Beam's import warns, on the root logger, that its BigQuery clients are missing
    where its GCP extra is not installed, which is how we install it (the extra is
    `vectorstream[dataflow]`: docs/runners.md). That one line is left out; nothing else."""

    def filter(self, record):
        return not (record.name == "root" and record.getMessage().startswith(
            "apitools not found, and bigquery client libraries are not available"))


_logging.getLogger().addFilter(_WithoutBeamsGcpNotice())
