"""The data lifecycle on both stores (the embedded Edge shard and qdrant-client's local
mode), with real runs over the real broker and the real models: tombstones delete in
order, forget removes every point of a user and nothing else, expire removes exactly the
old points, and a model upgrade (384-d MiniLM to 512-d multilingual USE) while a
streaming run writes loses no event, search answers throughout, and a rollback restores
the old answers."""
import datetime as dt
import json
import re
import subprocess
import sys
import threading
import uuid

import pytest

from conftest import GroupOffsets, PipelineProcess
from vectorstream.io.kafka_admin import ensure_topic
from vectorstream.io.produce import generate, produce
from vectorstream.io.qdrant import open_store
from vectorstream.pipeline.launch import run
from vectorstream.transforms.events import format_time

EVENTS = "ecommerce_events"


@pytest.fixture(params=["edge", "client-local"])
def store(request, tmp_path):
    if request.param == "edge":
        path = str(tmp_path / "edge")
        return {"flags": ["--qdrant_path", path], "open": lambda: open_store(path=path),
                "read": lambda: open_store(path=path, read_only=True)}
    url = f"local://{tmp_path / 'local'}"
    return {"flags": ["--qdrant_url", url], "open": lambda: open_store(url=url),
            "read": lambda: open_store(url=url)}


def cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "vectorstream", *args], capture_output=True,
                          text=True, timeout=timeout)


def _ids(opener, collection=EVENTS):
    s = opener()
    try:
        return sorted(h.payload["event_id"] for h in s.scroll(collection))
    finally:
        s.close()


def _bounded(kafka, topic, count, store, *extra):
    run(["--bootstrap_servers", kafka, "--topic", topic, "--consumer_group", f"g-{topic}",
         "--max_num_records", str(count), "--progress_seconds", "0",
         "--dead_letter_path", str(store.get("dead", "/dev/null")), *store["flags"], *extra])


def _events(n, seed, **fields):
    out = []
    for _, _, event in generate(n, products=20, seed=seed):
        event.update(fields)
        out.append(event)
    return out


def _messages(events):
    return [(e["event_id"].encode(), json.dumps(e).encode()) for e in events]


def test_tombstones_delete_in_order(kafka, tmp_path, store):
    """One partition: e1 e2 e3, a tombstone of e2, a tombstone of e3 then e3 again (it
    stands), a tombstone of an id never stored (no error), a tombstone without a key (a
    dead letter with its reason)."""
    topic = f"tomb-{uuid.uuid4().hex[:8]}"
    ensure_topic(kafka, topic, partitions=1)
    e1, e2, e3 = _events(3, seed=21)
    produce(kafka, topic, _messages([e1, e2, e3]) + [
        (e2["event_id"].encode(), None), (e3["event_id"].encode(), None)]
        + _messages([e3]) + [(b"never-stored", None), (None, None)])
    store["dead"] = tmp_path / "dead.jsonl"
    _bounded(kafka, topic, 8, store)
    assert _ids(store["open"]) == sorted([e1["event_id"], e3["event_id"]])
    dead = [json.loads(line) for line in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert [d["reason"] for d in dead] == [
        "a tombstone (null value) without a key: there is no event id to delete"]


def test_forget_a_user_removes_their_points_and_nothing_else(kafka, tmp_path, store):
    topic = f"forget-{uuid.uuid4().hex[:8]}"
    ensure_topic(kafka, topic, partitions=2)
    mine, theirs = _events(30, 31, user_id="ayse"), _events(30, 32, user_id="mehmet")
    produce(kafka, topic, _messages(mine + theirs))
    _bounded(kafka, topic, 60, store)
    flags = store["flags"]
    ensure_topic(kafka, f"{topic}.dlq", partitions=1)  # where her dead letters would be
    proc = cli("forget", "--user", "ayse", "--bootstrap_servers", kafka, "--topic", topic,
               *flags)
    assert proc.returncode == 0, proc.stderr
    assert "forgot user 'ayse': 30 event points and 1 profile(s) deleted" in proc.stdout
    assert "cannot be edited" in proc.stderr and f"{topic}.dlq" in proc.stderr
    assert "retention.ms" in proc.stderr, "how long the topic keeps them, from the broker"
    assert _ids(store["open"]) == sorted(e["event_id"] for e in theirs)
    s = store["open"]()
    try:
        from vectorstream.transforms.entities import user_point_id
        assert not s.retrieve(f"{EVENTS}_users", [user_point_id("ayse")])
        assert s.retrieve(f"{EVENTS}_users", [user_point_id("mehmet")])
        counts = sum(h.payload["events"] for h in s.scroll(f"{EVENTS}_products"))
        assert counts == 30, "the products are counted without her events"
    finally:
        s.close()
    again = cli("forget", "--user", "ayse", "--bootstrap_servers", kafka, "--topic",
                f"no-{topic}", *flags)
    assert again.returncode == 0 and "nothing of user 'ayse' is stored" in again.stdout
    assert f"no dead-letter topic no-{topic}.dlq" in again.stderr


def test_expire_removes_exactly_the_old_points(kafka, tmp_path, store):
    topic = f"expire-{uuid.uuid4().hex[:8]}"
    ensure_topic(kafka, topic, partitions=1)
    now = dt.datetime.now(dt.timezone.utc)
    old = _events(10, 41, timestamp=format_time(now - dt.timedelta(days=45)))
    new = _events(10, 42, timestamp=format_time(now - dt.timedelta(days=2)))
    produce(kafka, topic, _messages(old + new))
    _bounded(kafka, topic, 20, store)
    proc = cli("expire", "--older_than", "1w2d", *store["flags"])
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "vectorstream: error: --older_than '1w2d' is not a duration: give a positive number "
        "and a unit, e.g. 30d, 12h, 90m, 45s or 2w"]
    proc = cli("expire", "--older_than", "30d", *store["flags"])
    assert proc.returncode == 0 and "expired 10 event points older than 30d" in proc.stdout
    assert _ids(store["open"]) == sorted(e["event_id"] for e in new)
    assert "expired 0 event points" in cli("expire", "--older_than", "30d",
                                           *store["flags"]).stdout


def test_retention_days_on_a_run_drops_the_old_points(kafka, tmp_path):
    topic = f"retain-{uuid.uuid4().hex[:8]}"
    ensure_topic(kafka, topic, partitions=1)
    now = dt.datetime.now(dt.timezone.utc)
    old = _events(5, 51, timestamp=format_time(now - dt.timedelta(days=100)))
    new = _events(5, 52, timestamp=format_time(now))
    produce(kafka, topic, _messages(old + new))
    path = str(tmp_path / "q")
    _bounded(kafka, topic, 10, {"flags": ["--qdrant_path", path]}, "--retention_days", "30")
    assert _ids(lambda: open_store(path=path)) == sorted(e["event_id"] for e in new)


@pytest.fixture(params=["edge", pytest.param("server", marks=pytest.mark.server)])
def live_store(request, tmp_path, qdrant_url):
    """A store a second process may read and write while a pipeline writes it: the
    embedded store (readers copy the shard the pipeline holds; the new version is a shard
    of its own), or a Qdrant server (qdrant-client's local mode takes one process)."""
    if request.param == "edge":
        path = str(tmp_path / "edge")
        return {"flags": ["--qdrant_path", path], "open": lambda: open_store(path=path)}
    collection = f"reindex{uuid.uuid4().hex[:6]}"
    return {"flags": ["--qdrant_url", qdrant_url, "--collection", collection],
            "open": lambda: open_store(url=qdrant_url), "collection": collection}


def test_a_model_upgrade_while_a_stream_writes(kafka, tmp_path, live_store):
    """MiniLM (384-d) to USE (512-d) under a live run: the new version ends with every
    event the old one has (what the old run stored after the reindex by `--since`, once
    it stopped), search answers all along, the alias moves, and a rollback gives the old
    answers back."""
    store = live_store
    events = store.get("collection", EVENTS)
    topic = f"reindex-{uuid.uuid4().hex[:8]}"
    ensure_topic(kafka, topic, partitions=2)
    group = f"g-{topic}"
    first, later = _events(150, 61), _events(60, 62)
    produce(kafka, topic, _messages(first))
    offsets = GroupOffsets(kafka, topic, group)
    pipeline = PipelineProcess("--bootstrap_servers", kafka, "--topic", topic,
                               "--consumer_group", group, "--model", "minilm",
                               "--window_seconds", "2", "--progress_seconds", "0",
                               "--dead_letter_path", str(tmp_path / "dead.jsonl"),
                               *store["flags"])
    answers, failures, stop = [], [], threading.Event()

    def keep_searching():
        while not stop.is_set():
            proc = cli("search", "kulaklık", "--limit", "3", "--json", *store["flags"])
            if proc.returncode != 0:
                failures.append(proc.stderr[-300:])
            else:
                answers.append(json.loads(proc.stdout)["model"])
    try:
        offsets.wait_for(len(first), timeout=300, pipeline=pipeline)
        assert json.loads(cli("search", "kablosuz kulaklık", "--json", *store["flags"])
                          .stdout)["model"] == "all-MiniLM-L6-v2"
        searcher = threading.Thread(target=keep_searching)
        searcher.start()
        producer = threading.Thread(target=produce, args=(kafka, topic, _messages(later)),
                                    kwargs={"rate": 10})
        producer.start()  # while the reindex runs
        proc = cli("reindex", "--model", "use-multilingual-v3", *store["flags"], timeout=900)
        producer.join()
        offsets.wait_for(len(first) + len(later), timeout=300, pipeline=pipeline)
        stop.set()
        searcher.join()
    finally:
        stop.set()
        pipeline.stop(timeout=60)
        offsets.close()
    assert proc.returncode == 0, proc.stderr
    assert f"{events}__all-minilm-l6-v2 -> {events}__use-multilingual-v3" in proc.stdout
    # the old run wrote on after the move until it stopped: the printed command catches up
    since = re.search(r"--since (\S+)`", proc.stdout).group(1)
    caught = cli("reindex", "--model", "use-multilingual-v3", "--since", since,
                 *store["flags"], timeout=600)
    assert caught.returncode == 0 and "caught up" in caught.stdout, caught.stderr
    assert not failures and answers, failures
    assert set(answers) <= {"all-MiniLM-L6-v2", "use-multilingual-v3"}
    old = _ids(store["open"], f"{events}__all-minilm-l6-v2")
    new = _ids(store["open"], f"{events}__use-multilingual-v3")
    assert len(old) == len(first) + len(later)
    assert new == old, ("every event the old version has is in the new one", len(new),
                        proc.stdout, proc.stderr[-1500:], caught.stdout)
    after = cli("search", "kablosuz kulaklık", "--json", *store["flags"])
    assert json.loads(after.stdout)["model"] == "use-multilingual-v3"
    refused = cli("search", "x", "--model", "minilm", *store["flags"])
    assert refused.returncode == 2 and refused.stderr.strip().startswith(
        f"vectorstream: error: {events} is {events}__use-multilingual-v3, built with another "
        f"model than --model all-MiniLM-L6-v2")
    flags = [f for f in store["flags"] if f not in ("--collection", events)]
    old_answers = cli("search", "kablosuz kulaklık", "--json", *flags,
                      "--collection", f"{events}__all-minilm-l6-v2")
    back = cli("reindex", "--rollback", *store["flags"])
    assert back.returncode == 0, back.stderr
    restored = cli("search", "kablosuz kulaklık", "--json", *store["flags"])
    assert json.loads(restored.stdout)["model"] == "all-MiniLM-L6-v2"
    assert [h["id"] for h in json.loads(restored.stdout)["hits"]] == \
        [h["id"] for h in json.loads(old_answers.stdout)["hits"]]


def test_a_model_upgrade_in_local_mode(kafka, tmp_path):
    """The server code path in qdrant-client's local mode (one process at a time: no live
    run beside it): the new version has every event, the aliases move and move back."""
    url = f"local://{tmp_path / 'local'}"
    topic = f"reindexl-{uuid.uuid4().hex[:8]}"
    ensure_topic(kafka, topic, partitions=1)
    events = _events(40, 71)
    produce(kafka, topic, _messages(events))
    _bounded(kafka, topic, 40, {"flags": ["--qdrant_url", url]}, "--model", "minilm")
    proc = cli("reindex", "--model", "use-multilingual-v3", "--qdrant_url", url)
    assert proc.returncode == 0, proc.stderr
    opener = lambda: open_store(url=url)  # noqa: E731
    assert _ids(opener, f"{EVENTS}__use-multilingual-v3") == sorted(e["event_id"] for e in events)
    stats = json.loads(cli("stats", "--json", "--qdrant_url", url).stdout)
    assert stats["model"] == "use-multilingual-v3" and stats["points"] == 40
    assert stats["collections"][f"{EVENTS}_products"]["model"] == "use-multilingual-v3"
    assert cli("reindex", "--rollback", "--qdrant_url", url).returncode == 0
    assert json.loads(cli("stats", "--json", "--qdrant_url", url).stdout)["model"] == \
        "all-minilm-l6-v2"


def test_lifecycle_refusals_are_one_line(tmp_path):
    path = str(tmp_path / "empty")
    proc = cli("reindex", "--rollback", "--qdrant_path", path)
    assert proc.returncode == 2
    proc = cli("reindex", "--model", str(tmp_path / "not-a-model"), "--qdrant_path", path)
    assert proc.returncode == 2 and "is not a sentence-transformers model directory" in \
        proc.stderr and "Traceback" not in proc.stderr
