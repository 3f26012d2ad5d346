"""The native Kafka reader on the real broker: it emits batches, each within one fixed
window of event time, no larger than asked, every record once and in offset order, and a
bounded read stops at its record budget however the batches fall."""
import datetime as dt
import json
import random
import time

from vectorstream.io.kafka_admin import ensure_topic, group_offsets
from vectorstream.io.kafka_source import KafkaSource
from vectorstream.io.produce import catalog, make_event, produce

START = dt.datetime(2026, 11, 22, 10, 0, 0, tzinfo=dt.timezone.utc)


def _events(count):
    """`count` events 0.1 s of event time apart (30 s for 300: three 10-s windows), and one
    malformed message, which keeps Kafka's timestamp."""
    rng = random.Random(3)
    products = catalog(20, seed=3)
    out = []
    for i in range(count):
        event = make_event(rng, products[i % 20], now=START + dt.timedelta(seconds=i / 10))
        out.append((event["event_id"].encode(), json.dumps(event).encode()))
    out.insert(count // 2, (b"bad", b"{not json"))
    return out


def _read_all(source, expected, timeout=60.0):
    reader = source.create_reader(None, None)
    batches, timestamps = [], []
    deadline = time.time() + timeout
    has = reader.start()
    while sum(map(len, batches)) < expected and time.time() < deadline:
        if has:
            batches.append(reader.get_current())
            timestamps.append(reader.get_current_timestamp())
        has = reader.advance()
    # A bounded reader is done at its budget: nothing more comes.
    more = reader.advance()
    reader.close()
    return batches, timestamps, more


def _event_ms(message):
    try:
        stamp = json.loads(message.value)["timestamp"]
    except ValueError:
        return message.timestamp_ms
    return int(dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


def test_batches_stay_in_one_window_and_keep_every_record_once(kafka):
    topic = f"reader-{random.getrandbits(40):x}"
    ensure_topic(kafka, topic, partitions=1)
    messages = _events(300)
    produce(kafka, topic, messages)
    source = KafkaSource(kafka, topic, group=f"g-{topic}", max_num_records=len(messages),
                         batch_records=64, window_seconds=10)
    batches, timestamps, more = _read_all(source, len(messages))
    records = [m for batch in batches for m in batch]
    assert [m.offset for m in records] == list(range(len(messages)))  # each once, in order
    assert [m.value for m in records] == [v for _, v in messages]
    assert not more
    assert all(1 <= len(batch) <= 64 for batch in batches)
    for batch, stamp in zip(batches, timestamps):
        times = [_event_ms(m) for m in batch if m.value != b"{not json"]
        if not times:
            continue
        assert len({t // 10_000 for t in times}) == 1, "a batch spans two windows"
        assert stamp.micros // 1000 == min(_event_ms(m) for m in batch)
    # 300 events over 30 s of event time: at least one cut per window boundary.
    assert len(batches) >= 300 // 64 + 2


def test_a_bounded_read_stops_at_its_budget_across_partitions(kafka):
    topic = f"reader-{random.getrandbits(40):x}"
    ensure_topic(kafka, topic, partitions=3)
    produce(kafka, topic, _events(300))
    source = KafkaSource(kafka, topic, group=f"g-{topic}", max_num_records=250,
                         batch_records=100)
    batches, _, more = _read_all(source, 250)
    records = [(m.partition, m.offset) for batch in batches for m in batch]
    assert len(records) == 250 and len(set(records)) == 250
    assert not more


def test_consumers_warmed_up_before_the_runner_start_where_a_reader_would(kafka):
    """`warm_up` (the launcher, while it checks the store and builds the pipeline) starts
    each partition's consumer at the group's committed offset; the readers take them and
    read on from there, every record once; one no reader takes is closed after the run."""
    from confluent_kafka import Consumer, TopicPartition
    from vectorstream.io import kafka_warm
    topic = f"reader-{random.getrandbits(40):x}"
    ensure_topic(kafka, topic, partitions=2)
    messages = _events(200)
    produce(kafka, topic, messages)
    group = f"g-{topic}"
    committer = Consumer({"bootstrap.servers": kafka, "group.id": group})
    committer.commit(offsets=[TopicPartition(topic, 0, 30)], asynchronous=False)
    committer.close()
    kafka_warm.warm_up(KafkaSource(kafka, topic, group=group), group_offsets(kafka, topic, group))
    assert len(kafka_warm._WARM) == 2
    warmed = {key[-1]: consumer for key, (consumer, _) in kafka_warm._WARM.items()}
    # Partition 0 only, as a runner that split the source reads it.
    source = KafkaSource(kafka, topic, group=group, partitions=[0], batch_records=64)
    reader = source.create_reader(None, None)
    assert reader.start()
    assert reader._consumer is warmed[0]  # taken, not started again
    records = list(reader.get_current())
    quiet_since = time.time()
    while time.time() - quiet_since < 3:
        if reader.advance():
            records.extend(reader.get_current())
            quiet_since = time.time()
    _, end = reader._consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    reader.close()
    offsets = [m.offset for m in records]
    assert end > 30 and offsets == list(range(30, end))  # from the committed offset, each once
    assert list(kafka_warm._WARM) == [kafka_warm._warm_key(source, 1)]
    kafka_warm.close_warm_consumers()  # partition 1's: no reader took it
    assert kafka_warm._WARM == {}
