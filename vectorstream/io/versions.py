"""Collections versioned by model: the name a user gives (`--collection`, and its
`_products` and `_users`) is an alias of `NAME__<model tag>`, so a model upgrade builds a
new version beside the live one and moves the alias atomically (`vectorstream reindex`),
and a rollback moves it back.

On a Qdrant server (and qdrant-client's local mode) the alias is Qdrant's own collection
alias, changed by one atomic `update_collection_aliases` call; the previous version, for a
rollback, is kept in a small collection of ours (VERSIONS_COLLECTION). On the embedded
store the project keeps its own: `<qdrant_path>/aliases.json`, replaced atomically
(written aside, then renamed), which EdgeStore reads to resolve a name.

A collection made before versioning (a plain collection called NAME) stays what it is and
is written as before; it cannot be reindexed in place (a server cannot give an alias the
name of a collection).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import threading
from typing import Dict, Optional

from vectorstream.io.store import Store, StoreError

VERSIONS_COLLECTION = "vectorstream_versions"


def model_tag(model_name: str) -> str:
    """The model's part of a version's name: `all-minilm-l6-v2`, `use-multilingual-v3`."""
    return re.sub(r"[^a-z0-9]+", "-", model_name.lower()).strip("-") or "model"


def version_name(alias: str, model_name: str) -> str:
    return f"{alias}__{model_tag(model_name)}"


def tag_of(version: str) -> Optional[str]:
    return version.rsplit("__", 1)[1] if "__" in version else None


class Aliases:
    """The aliases of one store: {alias: {"current": version, "previous": version}}."""

    def __init__(self, store: Store):
        self.store = store
        self._edge = store.embedded
        self._rest = getattr(store, "rest", None)  # a server's REST (not local mode's)

    # -- reading
    def read(self) -> Dict[str, Dict[str, Optional[str]]]:
        if self._edge:
            return _read_file(self.store.path)
        if self._rest is not None:  # a run's checks: without qdrant-client (lever 34)
            current = self._rest.alias_targets()
            previous = {}
            if self._rest.exists(VERSIONS_COLLECTION):
                previous = {p["alias"]: p.get("previous")
                            for p in self._rest.scroll_payloads(VERSIONS_COLLECTION)}
            return {alias: {"current": target, "previous": previous.get(alias)}
                    for alias, target in current.items()}
        client = self.store.client
        current = {a.alias_name: a.collection_name for a in client.get_aliases().aliases}
        previous = {}
        if client.collection_exists(VERSIONS_COLLECTION):
            records, _ = client.scroll(VERSIONS_COLLECTION, limit=10_000, with_payload=True)
            previous = {r.payload["alias"]: r.payload.get("previous") for r in records}
        return {alias: {"current": target, "previous": previous.get(alias)}
                for alias, target in current.items()}

    def current(self, alias: str) -> Optional[str]:
        return (self.read().get(alias) or {}).get("current")

    def previous(self, alias: str) -> Optional[str]:
        return (self.read().get(alias) or {}).get("previous")

    # -- moving
    def point(self, alias: str, version: str) -> Optional[str]:
        """Points `alias` at `version` atomically; returns the version it pointed at."""
        if self._edge:
            with _file_lock(self.store.path):  # read, change, write: one writer at a time
                entries = _read_file(self.store.path)
                before = entries.get(alias) or {}
                old = before.get("current")
                if old != version:  # (another writer may have made it a moment ago)
                    entries[alias] = {"current": version,
                                      "previous": old or before.get("previous")}
                    _write_file(self.store.path, entries)
            self.store.forget_resolved()
            return old
        before = self.read().get(alias) or {}
        old = before.get("current")
        if self._rest is not None:
            self._point_rest(alias, version, old, before)
            return old
        from qdrant_client import models
        client = self.store.client
        operations = []
        if old:
            operations.append(models.DeleteAliasOperation(
                delete_alias=models.DeleteAlias(alias_name=alias)))
        operations.append(models.CreateAliasOperation(create_alias=models.CreateAlias(
            collection_name=version, alias_name=alias)))
        try:
            client.update_collection_aliases(change_aliases_operations=operations)
        except Exception:  # pylint: disable=broad-except
            # another writer made the same alias a moment ago (a fresh store, workers
            # starting together): that is what was asked
            if self.current(alias) != version:
                raise
        if not client.collection_exists(VERSIONS_COLLECTION):
            client.create_collection(VERSIONS_COLLECTION, vectors_config=models.VectorParams(
                size=1, distance=models.Distance.DOT))
        import uuid
        client.upsert(VERSIONS_COLLECTION, points=[models.PointStruct(
            id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"vectorstream-alias/{alias}")),
            vector=[1.0], payload={"alias": alias, "current": version,
                                  "previous": old or before.get("previous")})])
        return old

    def _point_rest(self, alias: str, version: str, old: Optional[str], before: dict) -> None:
        """`point` over a server's REST API: the same calls, without qdrant-client."""
        rest = self._rest
        actions = [{"delete_alias": {"alias_name": alias}}] if old else []
        actions.append({"create_alias": {"collection_name": version, "alias_name": alias}})
        try:
            rest.update_aliases(actions)
        except Exception:  # pylint: disable=broad-except
            if self.current(alias) != version:  # not another writer's same alias
                raise
        if not rest.exists(VERSIONS_COLLECTION):
            try:
                rest.create_collection(VERSIONS_COLLECTION, 1, "Dot")
            except Exception:  # pylint: disable=broad-except
                if not rest.exists(VERSIONS_COLLECTION):  # not another writer's race
                    raise
        import uuid
        rest.upsert(VERSIONS_COLLECTION, [{
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"vectorstream-alias/{alias}")),
            "vector": [1.0], "payload": {"alias": alias, "current": version,
                                         "previous": old or before.get("previous")}}])


def writable(store: Store, alias: str, model_name: str, dim: int, indexes=None) -> str:
    """The collection a writer with `model_name` writes as `alias`: the alias's version
    when it is this model's; this model's own version otherwise (a new model writing ahead
    of a reindex, or the old one after the alias moved); a plain collection made before
    versioning, as it is. A fresh name gets this model's version and the alias."""
    aliases = Aliases(store)
    current = aliases.current(alias)
    if current is None and store.exists(alias):  # a plain collection, from before versions
        store.ensure_collection(alias, dim, indexes)
        return alias
    target = version_name(alias, model_name)
    if current is not None and tag_of(current) == model_tag(model_name):
        target = current
    store.ensure_collection(target, dim, indexes)
    if current is None:
        aliases.point(alias, target)
    return target


def versions_of(store: Store, alias: str) -> list:
    """Every collection of `alias`: its versions, and a plain collection of that name."""
    if not store.embedded:
        names = [c.name for c in store.client.get_collections().collections]
    else:
        names = os.listdir(store.path) if os.path.isdir(store.path) else []
        names = [n for n in names if os.path.exists(os.path.join(store.path, n,
                                                                 "edge_config.json"))]
    return sorted(n for n in names if n == alias or n.startswith(alias + "__"))


KNOWN_MODELS = {"all-minilm-l6-v2": "minilm", "use-multilingual-v3": "use-multilingual-v3"}


def model_for(store: Store, name: str, model: Optional[str]):
    """(version, --model to query it with) for reading `name`: the collection's own model
    when its version names one we ship; `model` when given, and refused in one line when
    it is not the collection's (another tag, or another vector size)."""
    from vectorstream.transforms.model import choose_model
    version = resolve(store, name)
    tag = tag_of(version)
    if model is None:
        if tag is not None and tag not in KNOWN_MODELS:
            raise StoreError(f"{name} ({version}) was built with a model of your own: give "
                             f"its --model")
        model = KNOWN_MODELS.get(tag)
    choice = choose_model(model)
    if tag is not None and tag != model_tag(choice.name):
        raise StoreError(f"{name} is {version}, built with another model than --model "
                         f"{choice.name}: query it with its own (leave --model out), or "
                         f"reindex it (`vectorstream reindex`)")
    size = store.vector_size(version) if store.exists(version) else None
    if size is not None and size != choice.dim:
        raise StoreError(f"{name} ({version}) holds vectors of size {size} and --model "
                         f"{choice.name} makes {choice.dim}: query it with the model it was "
                         f"built with")
    return version, choice


def resolve(store: Store, name: str) -> str:
    """The collection `name` stands for now (itself when it is no alias)."""
    if hasattr(store, "alias_targets"):  # the REST reader of `search` (io.rest)
        return store.alias_targets().get(name) or name
    return Aliases(store).current(name) or name


def _aliases_path(folder: str) -> str:
    return os.path.join(folder, "aliases.json")


def _read_file(folder: str) -> Dict:
    try:
        with open(_aliases_path(folder)) as fh:
            return json.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise StoreError(f"{_aliases_path(folder)} cannot be read ({exc}): restore it, or "
                         f"remove it to use the collections by their full names") from None


_THREADS = threading.Lock()


@contextlib.contextmanager
def _file_lock(folder: str):
    """aliases.json changed by one writer at a time: the threads of this process (the
    writers of a run's three collections start together) and other processes (a reindex
    beside a run) alike."""
    import fcntl
    os.makedirs(folder, exist_ok=True)
    with _THREADS, open(os.path.join(folder, "aliases.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_file(folder: str, entries: Dict) -> None:
    os.makedirs(folder, exist_ok=True)
    temporary = _aliases_path(folder) + f".{os.getpid()}.{threading.get_ident()}.tmp"
    with open(temporary, "w") as fh:
        json.dump(entries, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(temporary, _aliases_path(folder))
