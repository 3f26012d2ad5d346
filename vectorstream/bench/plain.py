"""The consumer a user writes by hand instead of adopting a pipeline, as a baseline
(`vectorstream bench --baseline plain`): one process, confluent-kafka consuming batches
of 512, `json.loads`, a dict cache of text → vector in front of sentence-transformers'
`encode`, qdrant-client `upsert(wait=True)` over gRPC, a synchronous commit after each
batch. Reasonably tuned (batches, the cache, gRPC), and honest: no dead letters, no
windows, no retries; a malformed message is skipped.

    python -m vectorstream.bench.plain --bootstrap_servers B --topic T --group G \
        --qdrant_url URL [--grpc_port P] --collection C [--model M] [--device cpu]

Reads each partition up to its end offset at the start (a backfill), then exits.
"""
import argparse
import json
import sys
import time
import uuid


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap_servers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--qdrant_url", required=True)
    parser.add_argument("--grpc_port", type=int, default=6334)
    parser.add_argument("--collection", required=True)
    parser.add_argument("--model", default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    started = time.time()

    from confluent_kafka import Consumer, TopicPartition
    from qdrant_client import QdrantClient, models
    from vectorstream.transforms.model import choose_model, load_model, resolve_device

    choice = choose_model(args.model)
    model = load_model(choice.path, resolve_device(args.device))
    client = QdrantClient(url=args.qdrant_url, grpc_port=args.grpc_port, prefer_grpc=True)
    if not client.collection_exists(args.collection):
        client.create_collection(args.collection, vectors_config=models.VectorParams(
            size=choice.dim, distance=models.Distance.COSINE))
    consumer = Consumer({"bootstrap.servers": args.bootstrap_servers, "group.id": args.group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    partitions = consumer.list_topics(args.topic, timeout=10).topics[args.topic].partitions
    ends = {p: consumer.get_watermark_offsets(TopicPartition(args.topic, p), timeout=10)[1]
            for p in partitions}
    consumer.assign([TopicPartition(args.topic, p) for p in partitions])
    namespace = uuid.UUID("6f1e9f0c-3b7a-5d2e-9c4b-8a1d2e3f4a5b")
    cache, done, stored, first_polled = {}, {p: 0 for p in partitions}, 0, None
    while any(done[p] < ends[p] for p in partitions):
        messages = consumer.consume(512, timeout=1.0)
        if messages and first_polled is None:
            first_polled = time.time()
        points, texts = [], []
        for message in messages:
            if message.error():
                continue
            done[message.partition()] = message.offset() + 1
            try:
                event = json.loads(message.value())
                product = event["product"]
                text = f"{product['name']}. {product.get('description', '').strip()}"
            except (ValueError, KeyError, TypeError):
                continue  # a malformed message: skipped
            event["kafka_ms"] = message.timestamp()[1]
            points.append((str(uuid.uuid5(namespace, event["event_id"])), text, event))
            if text not in cache:
                texts.append(text)
        if texts:
            unique = list(dict.fromkeys(texts))
            for text, vector in zip(unique, model.encode(unique, batch_size=64,
                                                         normalize_embeddings=True)):
                cache[text] = vector.tolist()
        if points:
            now = time.time()
            for _, _, event in points:
                event["ingested_at"] = now
            client.upsert(args.collection, wait=True, points=[
                models.PointStruct(id=pid, vector=cache[text], payload=event)
                for pid, text, event in points])
            stored += len(points)
        if messages:
            consumer.commit(asynchronous=False)
    consumer.close()
    print(json.dumps({"stored": stored, "wall_s": round(time.time() - started, 2),
                      "startup_s": round((first_polled or time.time()) - started, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
