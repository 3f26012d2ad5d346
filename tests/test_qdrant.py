"""Both store backends on real Qdrant code: the embedded Edge shard, and qdrant-client's
local mode standing in for a server (the server code path); and, when
VECTORSTREAM_QDRANT_URL names a Qdrant server, that server over gRPC and over REST (each
test in a collection of its own, dropped afterwards)."""
import os
import uuid

import pytest

from vectorstream.io.qdrant import Point, StoreError, open_store


SERVER = os.environ.get("VECTORSTREAM_QDRANT_URL")


@pytest.fixture(params=["edge", "client-local",
                        pytest.param("server-grpc", marks=pytest.mark.server),
                        pytest.param("server-rest", marks=pytest.mark.server)])
def store_args(request, tmp_path):
    if request.param == "edge":
        return {"path": str(tmp_path / "edge")}
    if request.param == "client-local":
        return {"url": f"local://{tmp_path / 'local'}"}
    return {"url": SERVER, "grpc": request.param == "server-grpc"}


@pytest.fixture
def name(store_args):
    """The collection: its own on a server (shared by runs), dropped after the test."""
    if "path" in store_args or store_args["url"].startswith("local://"):
        yield "events"
        return
    collection = f"test-{uuid.uuid4().hex[:10]}"
    yield collection
    from qdrant_client import QdrantClient
    client = QdrantClient(url=SERVER)
    client.delete_collection(collection)
    client.close()


def unit(*xs):
    norm = sum(x * x for x in xs) ** 0.5
    return [x / norm for x in xs]


def test_create_upsert_search_filter_and_overwrite(store_args, name):
    store = open_store(**store_args)
    try:
        store.ensure_collection(name, 3)
        store.ensure_collection(name, 3)  # idempotent
        a, b = str(uuid.uuid4()), str(uuid.uuid4())
        store.upsert(name, [
            Point(a, unit(1, 0, 0), {"event_type": "view", "product": {"category": "kitap"}}),
            Point(b, unit(0, 1, 0), {"event_type": "purchase", "product": {"category": "ev"}})])
        assert store.count(name) == 2
        hits = store.search(name, unit(0.9, 0.1, 0), limit=2)
        assert [h.id for h in hits] == [a, b]
        hits = store.search(name, unit(1, 0, 0), match={"product.category": "ev"})
        assert [h.id for h in hits] == [b]
        # The same id again overwrites: no duplicate.
        store.upsert(name, [Point(a, unit(0, 0, 1), {"event_type": "view", "v": 2})])
        assert store.count(name) == 2
        assert store.search(name, unit(0, 0, 1), limit=1)[0].payload["v"] == 2
        assert {h.id for h in store.scroll(name, batch=1)} == {a, b}
    finally:
        store.close()


def test_filter_only_fields_are_indexed_without_graph_links_and_still_filter(store_args,
                                                                              name):
    """Every indexed field is indexed; on a server, the fields no vector search filters by
    (times, a product's id) build no extra HNSW links, and their filters still work."""
    from vectorstream.io.store import FILTER_ONLY_FIELDS, INDEXED_FIELDS, Where
    store = open_store(**store_args)
    try:
        store.ensure_collection(name, 3)
        store.upsert(name, [Point(str(uuid.UUID(int=i)), unit(1, i, 0), {
            "event_type": "view", "product": {"id": f"p{i % 2}", "category": "ev"},
            "timestamp": f"2026-12-0{i + 1}T00:00:00Z", "ingested_at": "2026-12-04T00:00:00Z"})
            for i in range(4)])
        assert store.count_where(name, Where(before=("timestamp", "2026-12-03T00:00:00Z"))) == 2
        assert store.count_where(name, Where(match={"product.id": "p1"})) == 2
        if "url" in store_args and not store_args["url"].startswith("local://"):
            schema = store.client.get_collection(name).payload_schema
            assert set(schema) == set(INDEXED_FIELDS)
            graphless = {f for f, s in schema.items()
                         if s.params is not None and s.params.enable_hnsw is False}
            assert graphless == FILTER_ONLY_FIELDS
            store.ensure_collection(name, 3)  # again, as every run does: unchanged
            assert store.client.get_collection(name).payload_schema == schema
    finally:
        store.close()


@pytest.mark.server
def test_indexing_deferred_for_a_backfill_goes_back_to_what_it_was():
    """`defer_indexing` turns a server collection's indexing off and keeps the threshold
    it had in the collection's metadata; a second deferral (a run after one that was
    killed) keeps the first one's; `resume_indexing` puts it back and forgets it."""
    from qdrant_client import models
    from vectorstream.io.server import DEFERRED_KEY
    store = open_store(url=SERVER)
    names = [f"test-{uuid.uuid4().hex[:10]}" for _ in range(2)]

    def state(name):
        config = store.client.get_collection(name).config
        return config.optimizer_config.indexing_threshold, (config.metadata or {}).get(
            DEFERRED_KEY)
    try:
        for name, threshold in zip(names, (None, 20_000)):
            store.ensure_collection(name, 3)
            if threshold:  # the user's own threshold
                store.client.update_collection(name, optimizers_config=models.OptimizersConfigDiff(
                    indexing_threshold=threshold))
            before = state(name)[0]
            assert store.resume_indexing(name) is None  # nothing deferred: nothing done
            assert store.defer_indexing(name) and state(name) == (0, before)
            assert store.defer_indexing(name) and state(name) == (0, before)
            assert store.resume_indexing(name) == before and state(name) == (before, None)
            assert store.resume_indexing(name) is None and state(name) == (before, None)
        assert state(names[1])[0] == 20_000
    finally:
        for name in names:
            store.client.delete_collection(name)
        store.close()
    local = open_store(url="local://" + os.path.join(os.environ.get("TMPDIR", "/tmp"),
                                                     f"vs-local-{uuid.uuid4().hex[:8]}"))
    try:
        local.ensure_collection("events", 3)
        assert not local.defer_indexing("events") and local.resume_indexing("events") is None
    finally:
        local.close()


def test_users_events_read_in_batches_as_one_by_one(store_args, name):
    """A profile writer reads many users' newest events at once (`Store.latest_many`: a
    server answers a chunk of users in one request); each user gets what their own read
    gives, the events tied at the n-th's time included, in more users than one request
    holds."""
    from vectorstream.io.entities import user_events, users_events
    from vectorstream.io.store import INDEXED_FIELDS
    import random
    rng = random.Random(5)
    store = open_store(**store_args)
    try:
        store.ensure_collection(name, 4, INDEXED_FIELDS)
        points = []
        for u in range(40):
            for i in range(rng.randint(0, 8)):
                minute = rng.choice([0, 1, 2, 2, 2, 3])  # ties at the boundary
                points.append(Point(str(uuid.uuid4()), unit(rng.random(), rng.random(), 1, 0), {
                    "user_id": f"u{u}", "event_id": f"u{u}-{i}", "event_type": "view",
                    "timestamp": f"2026-12-04T10:0{minute}:00Z", "product": {"id": "p1"}}))
        store.upsert(name, points)
        users = [f"u{u}" for u in range(40)] + ["nobody"]
        batched = users_events(store, name, users, 3)
        one_by_one = [user_events(store, name, u, 3) for u in users]

        def key(events):
            return sorted((e["event_id"], e["timestamp"], tuple(e["vector"])) for e in events)
        assert [key(e) for e in batched] == [key(e) for e in one_by_one]
        assert batched[-1] == [] and sum(map(len, batched)) >= 40
    finally:
        store.close()


def test_vector_size_mismatch_is_a_clear_error(store_args, name):
    store = open_store(**store_args)
    store.ensure_collection(name, 3)
    store.close()
    store = open_store(**store_args)
    try:
        with pytest.raises(StoreError, match="holds vectors of size 3.*size 384"):
            store.ensure_collection(name, 384)
    finally:
        store.close()


def test_the_sinks_look_up_and_a_refused_point(store_args, name):
    """payload_field (the sink's fingerprint look-up, nested payloads and unicode
    included), and a point of the wrong size refused with an error the sink takes as
    permanent (so it goes to dead letters instead of being retried)."""
    from vectorstream.io.sink import is_transient
    store = open_store(**store_args)
    try:
        store.ensure_collection(name, 3)
        a, b, missing = (str(uuid.uuid4()) for _ in range(3))
        store.upsert(name, [
            Point(a, unit(1, 0, 0), {"event_hash": "r1:aa", "product": {"name": "Çay 🍵",
                                                                        "price": 12.5}}),
            Point(b, unit(0, 1, 0), {"other": [1, 2, {"x": None}], "flag": True})])
        assert store.payload_field(name, [a, b, missing], "event_hash") == {a: "r1:aa"}
        assert store.payload_field(name, [a], "product") == {
            a: {"name": "Çay 🍵", "price": 12.5}}
        with pytest.raises(Exception) as refused:
            store.upsert(name, [Point(str(uuid.uuid4()), [1.0, 0.0], {"v": 1})])
        assert not is_transient(refused.value), refused.value
        assert store.count(name) == 2
    finally:
        store.close()


def test_embedded_store_held_by_another_process_says_what_to_do(tmp_path):
    import subprocess
    import sys
    import textwrap
    path = str(tmp_path / "edge")
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from vectorstream.io.qdrant import open_store
        from vectorstream.io.qdrant import Point
        s = open_store(path={path!r}); s.ensure_collection("events", 3)
        s.upsert("events", [Point("5c2a0a8e-0f4e-4a51-9d43-3f0b8d7a1c11", [1, 0, 0], {{}})])
        print("ready", flush=True); time.sleep(60)""")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        store = open_store(path=path)
        with pytest.raises(StoreError, match="open in another process"):
            store.count("events")
        # Reading (search, stats) goes on from a copy taken now.
        view = open_store(path=path, read_only=True)
        try:
            assert view.count("events") == 1
            assert view.copied_from == os.path.join(path, "events")
        finally:
            view.close()
    finally:
        holder.kill()
        holder.wait()


def test_readers_never_touch_a_shard_another_process_writes(tmp_path):
    """`search` and `stats` beside a running pipeline: a reader used to try loading the
    held shard before copying it, and that refused load rewrote some of the holder's
    segment files; the holder's next flush failed ("tracker journal ... is shorter than
    expected") and points were lost (a model upgrade under a live run ended with 1 of 210
    events in CI). Real shards; the writer flushes after every batch, as Edge may on its
    own, since the damage showed at a flush."""
    import subprocess
    import sys
    import textwrap
    path = str(tmp_path / "edge")
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import random, time, uuid
        from vectorstream.io.qdrant import Point, open_store
        s = open_store(path={path!r}); s.ensure_collection("events", 8, {{}})
        print("ready", flush=True)
        for i in range(60):
            s.upsert("events", [Point(str(uuid.uuid4()), [random.random() for _ in range(8)],
                                      {{"i": i}}) for _ in range(50)])
            s._shards["events"].flush()
            time.sleep(0.02)
        s.close()
        print("wrote", 60 * 50, flush=True)""")], stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        seen = []
        while writer.poll() is None:
            view = open_store(path=path, read_only=True)
            try:
                seen.append(view.count("events"))
            finally:
                view.close()
        out, err = writer.communicate(timeout=60)
    finally:
        writer.kill()
    assert writer.returncode == 0 and out.strip() == "wrote 3000", err[-2000:]
    assert len(seen) > 3 and seen == sorted(seen)  # each view a moment of the writer's
    store = open_store(path=path)
    try:
        assert store.count("events") == 3000
    finally:
        store.close()


def test_closing_an_embedded_store_waits_for_the_calls_in_flight(tmp_path):
    """A portable runner's worker can still be in a bundle when the launcher closes the
    run's stores: closing a shard under another thread's call used to fail with "Already
    borrowed" (it failed a finished Flink run in CI). Real shard, real threads."""
    import random
    import threading
    import time
    store = open_store(path=str(tmp_path / "edge"))
    store.ensure_collection("events", 8)
    store.upsert("events", [Point(str(uuid.uuid4()), [random.random() for _ in range(8)],
                                  {"n": i}) for i in range(3000)])
    outcomes, stop = [], threading.Event()

    def read():
        try:
            while not stop.is_set():
                store.retrieve("events", [str(uuid.uuid4()) for _ in range(200)])
                list(store.scroll("events", batch=500))
        except Exception as exc:  # pylint: disable=broad-except
            outcomes.append(exc)

    for _ in range(5):
        readers = [threading.Thread(target=read) for _ in range(2)]
        for reader in readers:
            reader.start()
        time.sleep(0.2)
        try:
            store.close()  # may not raise; later calls reopen the shard
        finally:
            stop.set()
            for reader in readers:
                reader.join()
            stop.clear()
        assert outcomes == []
    assert store.count("events") == 3000
    store.close()


class _Listener:
    """A TCP port that counts who connects (and hangs up on them): a stand-in for a server
    port, to see where a command's connections go."""

    def __init__(self, port=0):
        import socket
        import threading
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            conn.close()

    def close(self):
        self.sock.close()


def test_a_server_off_the_default_port_gets_its_grpc_port_named_never_guessed():
    """Two servers on one machine: `--qdrant_url http://HOST:6343` once wrote to the server
    on 6333/6334, as the gRPC port was fixed at 6334. Now a URL off Qdrant's default port
    needs --qdrant_grpc_port, in one line, for run and for the commands that read; given
    one, only that port is reached, and nothing reaches 6334."""
    import subprocess
    import sys
    rest, grpc = _Listener(), _Listener()
    try:
        default_grpc = _Listener(6334)
    except OSError:  # a real server holds it: nothing of ours may reach it either way
        default_grpc = None
    url = f"http://127.0.0.1:{rest.port}"
    try:
        for argv in (["run", "--qdrant_url", url, "--explain"], ["stats", "--qdrant_url", url],
                     ["search", "x", "--qdrant_url", url]):
            proc = subprocess.run([sys.executable, "-m", "vectorstream", *argv],
                                  capture_output=True, text=True, timeout=120)
            assert proc.returncode == 2, proc.stderr
            assert proc.stderr.strip().splitlines() == [
                f"vectorstream: error: --qdrant_url {url} is not on Qdrant's default port "
                f"6333, so its gRPC port cannot be guessed: give --qdrant_grpc_port PORT (the "
                f"server's service.grpc_port), or --qdrant_grpc off to use REST only"]
        assert rest.connections == grpc.connections == 0
        proc = subprocess.run([sys.executable, "-m", "vectorstream", "run", "--qdrant_url", url,
                               "--qdrant_grpc_port", str(grpc.port), "--explain"],
                              capture_output=True, text=True, timeout=120)
        assert f"gRPC on port {grpc.port}" in proc.stdout, proc.stderr
        proc = subprocess.run([sys.executable, "-m", "vectorstream", "stats", "--qdrant_url",
                               url, "--qdrant_grpc_port", str(grpc.port)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert "does not answer" in proc.stderr, proc.stderr
        # (stats reads the aliases over REST first; the sink's calls go to the gRPC port)
        from vectorstream.io.server import ServerStore
        store = ServerStore(url, grpc_port=grpc.port, timeout=2)
        with pytest.raises(Exception):
            store.payload_field("events", [str(uuid.uuid4())], "event_hash")
        store.close()
        assert grpc.connections > 0, "the gRPC port given was the one tried"
        if default_grpc is not None:
            assert default_grpc.connections == 0, "nothing reached the default gRPC port"
    finally:
        for listener in (rest, grpc, default_grpc):
            if listener is not None:
                listener.close()


@pytest.mark.server
def test_search_reads_a_server_over_rest_as_the_client_does(tmp_path):
    """`vectorstream search` reads a server over its REST API without importing
    qdrant-client or torch (1.3 s and 2.3 s of a cold search): the same hits, filters and
    alias as the qdrant-client store, and one line for a collection that is not there."""
    import json
    import subprocess
    import sys
    from vectorstream.io.rest import RestClient
    from vectorstream.io.store import Where
    from vectorstream.io.versions import Aliases, resolve
    name = f"test-{uuid.uuid4().hex[:10]}"
    alias = f"alias-{uuid.uuid4().hex[:10]}"
    client_store = open_store(url=SERVER)
    reader = RestClient(SERVER)
    try:
        client_store.ensure_collection(name, 3)
        client_store.upsert(name, [
            Point(str(uuid.UUID(int=i)), unit(1, i, 0), {"user_id": f"u{i % 2}", "n": i,
                                                         "product": {"name": f"p{i}"}})
            for i in range(6)])
        Aliases(client_store).point(alias, name)
        assert resolve(reader, alias) == resolve(client_store, alias) == name
        assert reader.exists(name) and not reader.exists(name + "-none")
        assert reader.vector_size(name) == 3
        where = Where(match={"user_id": "u1"}, not_ids=[str(uuid.UUID(int=5))])
        got = reader.search(name, unit(1, 4, 0), limit=3, where=where)
        want = client_store.search(name, unit(1, 4, 0), limit=3, where=where)
        assert [(h.id, round(h.score, 5), h.payload) for h in got] == \
            [(h.id, round(h.score, 5), h.payload) for h in want]
        assert [h.payload["n"] for h in got] == [3, 1]

        from vectorstream.transforms.model import choose_model, load_model
        texts = ["Kablosuz Kulaklık. Gürültü engelleme", "Suç ve Ceza. Roman",
                 "Yoga Matı. Kaymaz yüzey"]
        vectors = load_model(choose_model(None).path, "cpu").encode(texts)
        client_store.ensure_collection(name + "-use", 512)
        client_store.upsert(name + "-use", [
            Point(str(uuid.UUID(int=i)), v, {"product": {"name": t}, "event_type": "view"})
            for i, (t, v) in enumerate(zip(texts, vectors))])
        code = ("import sys; from vectorstream.cli import main; rc = main(sys.argv[1:]); "
                "assert 'qdrant_client' not in sys.modules and 'torch' not in sys.modules, "
                "sorted(m for m in sys.modules if m.split('.')[0] in ('qdrant_client', "
                "'torch')); sys.exit(rc)")
        proc = subprocess.run([sys.executable, "-c", code, "search", "wireless headphones",
                               "--qdrant_url", SERVER, "--collection", name + "-use", "--json",
                               "--filter", "event_type=view"], capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        hits = json.loads(proc.stdout)["hits"]
        assert hits[0]["payload"]["product"]["name"] == texts[0] and len(hits) == 3
        proc = subprocess.run([sys.executable, "-c", code, "search", "kulaklık", "--qdrant_url",
                               SERVER, "--collection", name + "-none"], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
            f"vectorstream: error: Qdrant server at {SERVER} has no collection {name}-none: "
            f"check --collection (`vectorstream stats` lists what a store holds), or run the "
            f"pipeline first"], proc.stderr
    finally:
        from qdrant_client import models
        client_store.client.update_collection_aliases(change_aliases_operations=[
            models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))])
        for collection in (name, name + "-use"):
            client_store.client.delete_collection(collection)
        client_store.close()


@pytest.mark.server
def test_a_runs_checks_and_writes_to_a_server_do_not_import_qdrant_client():
    """What a run that writes only events asks of a server (the collection made with its
    indexes and alias, its indexing deferred and resumed, the sink's upserts and look-ups)
    goes over REST and gRPC's wire bytes without importing qdrant-client (0.85-1.5 s of a
    run's start-up: lever 34); qdrant-client then reads back what was written."""
    import subprocess
    import sys
    from vectorstream.io.server import DEFERRED_KEY
    alias = f"test-{uuid.uuid4().hex[:10]}"
    code = f"""
import sys, uuid
from vectorstream.io.qdrant import Point, open_store
from vectorstream.io.versions import writable
store = open_store(url={SERVER!r})
target = writable(store, {alias!r}, "m", 3)
assert writable(store, {alias!r}, "m", 3) == target
store.defer_indexing(target)
ids = [str(uuid.UUID(int=i)) for i in range(5)]
store.upsert(target, [Point(i, [1.0, float(n), 0.5], {{"event_hash": f"r1:{{n}}", "n": n,
                                                     "product": {{"name": "Çay"}}}})
                      for n, i in enumerate(ids)])
assert store.payload_field(target, ids + [str(uuid.UUID(int=99))], "event_hash") == {{
    i: f"r1:{{n}}" for n, i in enumerate(ids)}}
assert store.resume_indexing(target) is not None and store.resume_indexing(target) is None
assert "qdrant_client" not in sys.modules, sorted(m for m in sys.modules if "qdrant" in m)
print(target)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    target = proc.stdout.strip()
    store = open_store(url=SERVER)
    try:
        assert target == f"{alias}__m" and store.exists(alias)
        info = store.client.get_collection(target)
        assert info.config.params.vectors.size == 3 and not (info.config.metadata or {}).get(
            DEFERRED_KEY) and "event_type" in info.payload_schema
        hits = store.retrieve(alias, [str(uuid.UUID(int=2))], with_vector=True)
        assert hits[0].payload == {"event_hash": "r1:2", "n": 2, "product": {"name": "Çay"}}
        assert [round(x * (1 + 4 + 0.25) ** 0.5, 4) for x in hits[0].vector] == [1, 2, 0.5]
    finally:
        from qdrant_client import models
        store.client.update_collection_aliases(change_aliases_operations=[
            models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))])
        store.client.delete_collection(target)
        store.close()


def test_the_grpc_calls_written_as_wire_bytes_equal_qdrant_clients_messages():
    """The sink's two gRPC calls are written and read in protobuf's wire format without
    qdrant-client (levers 33 and 34): the field numbers and method names must be
    qdrant-client's, the requests the messages its classes build from the same values
    (float32 vectors as the model gives them and lists of Python floats; every JSON type,
    nested, negative and 64-bit integers), and an answer its classes build must read back
    as the values. A payload with a value JSON has not is converted by qdrant-client, as
    before. The server tests store and read such points."""
    import datetime as dt
    import numpy as np
    from qdrant_client import grpc as qgrpc
    from qdrant_client.conversions.conversion import payload_to_grpc
    from vectorstream.io import grpc_wire
    for message, fields in grpc_wire.FIELDS.items():
        descriptor = getattr(qgrpc, message).DESCRIPTOR
        assert {f: descriptor.fields_by_name[f].number for f in fields} == fields, message
    service = qgrpc.points_service_pb2.DESCRIPTOR.services_by_name["Points"]
    for method, path in (("Upsert", grpc_wire.UPSERT_METHOD), ("Get", grpc_wire.GET_METHOD)):
        assert f"/{service.full_name}/{service.methods_by_name[method].name}" == path

    rng = np.random.default_rng(7)
    payloads = [{"event_id": "e-1", "product": {"name": "Çay bardağı", "price": 4.5,
                                                "tags": ["a", 2, None, {"x": [True]}]},
                 "n": 3, "big": 2 ** 63 - 1, "neg": -17, "low": -2 ** 63, "ok": False,
                 "none": None, "empty": {}, "nothing": [], "zero": 0.0, "text": "",
                 "long": "ğ" * 300, "many": list(range(-3, 200)), "n127": 127, "n128": 128},
                {"when": dt.datetime(2026, 12, 4, 10, 0, tzinfo=dt.timezone.utc),
                 "id": uuid.uuid4(), "t": (1, 2)}]  # the second: qdrant-client converts it
    vectors = [rng.random(512, dtype=np.float32), rng.random(3).tolist(), [0.0] * 40]
    points = [Point(str(uuid.uuid4()), v, p) for v in vectors for p in payloads]
    built = qgrpc.UpsertPoints(collection_name="events", wait=True, points=[
        qgrpc.PointStruct(id=qgrpc.PointId(uuid=p.id), payload=payload_to_grpc(p.payload),
                          vectors=qgrpc.Vectors(vector=qgrpc.Vector(
                              data=list(map(float, p.vector)))))
        for p in points])
    written = qgrpc.UpsertPoints.FromString(grpc_wire.upsert_request("events", points))
    assert written == built

    ids = [p.id for p in points]
    assert qgrpc.GetPoints.FromString(grpc_wire.get_request("events", ids, "event_hash")) == \
        qgrpc.GetPoints(collection_name="events", ids=[qgrpc.PointId(uuid=i) for i in ids],
                        with_payload=qgrpc.WithPayloadSelector(
                            include=qgrpc.PayloadIncludeSelector(fields=["event_hash"])),
                        with_vectors=qgrpc.WithVectorsSelector(enable=False))
    answer = qgrpc.GetResponse(result=[
        qgrpc.RetrievedPoint(id=qgrpc.PointId(uuid=ids[0]),
                             payload=payload_to_grpc({"event_hash": payloads[0]})),
        qgrpc.RetrievedPoint(id=qgrpc.PointId(uuid=ids[1]),
                             payload=payload_to_grpc({"event_hash": "r1:abc"})),
        qgrpc.RetrievedPoint(id=qgrpc.PointId(uuid=ids[2]), payload={}),
        qgrpc.RetrievedPoint(id=qgrpc.PointId(num=7),
                             payload=payload_to_grpc({"event_hash": -5}))], time=0.001)
    assert grpc_wire.get_response_field(answer.SerializeToString(), "event_hash") == {
        ids[0]: payloads[0], ids[1]: "r1:abc", "7": -5}


def test_a_grpc_point_written_as_wire_bytes_equals_one_built_field_by_field():
    """The upsert to a server writes each point's id and vector as protobuf's wire bytes
    (lever 33): the message must be the one qdrant-client's own classes build from the
    same values (float32 vectors as the model gives them, and lists of Python floats),
    byte for byte. The server tests store and read such points back."""
    import numpy as np
    from qdrant_client import grpc as qgrpc
    from qdrant_client.conversions.conversion import payload_to_grpc
    from vectorstream.io.grpc_wire import point_id_and_vector
    rng = np.random.default_rng(7)
    payload = {"event_id": "e-1", "product": {"name": "Çay bardağı", "price": 4.5},
               "tags": ["a", "b"], "n": 3, "ok": True, "none": None}
    for vector in (rng.random(512, dtype=np.float32), rng.random(3).tolist(), [0.0] * 40,
                   np.zeros(0, dtype=np.float32)):
        point_id = str(uuid.uuid4())
        built = qgrpc.PointStruct(
            id=qgrpc.PointId(uuid=point_id), payload=payload_to_grpc(payload),
            vectors=qgrpc.Vectors(vector=qgrpc.Vector(data=list(map(float, vector)))))
        written = qgrpc.PointStruct(payload=payload_to_grpc(payload))
        written.MergeFromString(point_id_and_vector(point_id, vector))
        assert written == built
        assert written.SerializeToString(deterministic=True) == \
            built.SerializeToString(deterministic=True)
