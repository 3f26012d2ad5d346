"""The house plan (docs/architecture.md), checked against the code's own imports: layers
that only look down, no import circle, rooms of at most 400 lines, and the run's shape
asked of the plan alone. An AST walk: every import counts, those inside functions too
(they are the edges a lazy import hides), except those under `if TYPE_CHECKING:`."""
import ast
import pathlib
import re

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "vectorstream"

# Bottom to top. A module may import its own room and the rooms of lower layers.
LAYERS = [
    {"config", "telemetry"},  # options, presets, secret references; counters: import nothing of ours
    {"transforms"},           # the event schema, parsing, the model: pure element-wise logic
    {"io"},                   # Kafka, Qdrant, Maven, files: clients of the outside world
    {"runners"},              # Beam's Java pieces, Prism, Flink's distribution and REST API
    {"pipeline"},             # the run plan, the graph, launching, operations
    {"bench", "demo", "serve", "lifecycle"},  # what commands do beyond a call or two
    {"cli"},                  # the commands
    {"__main__"},             # python -m vectorstream
]
LEAVES = {"config", "telemetry"}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, path


def _room(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def _imports(module: str, path: pathlib.Path):
    """The vectorstream modules `module` imports, with line numbers."""
    tree = ast.parse(path.read_text(), str(path))
    skip = set()
    for node in ast.walk(tree):  # `if TYPE_CHECKING:` blocks are not run
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            skip.update(id(n) for sub in node.body for n in ast.walk(sub))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            # `from vectorstream.x import y` may name a module y or a name in x.
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for name in names:
            if name == "vectorstream" or name.startswith("vectorstream."):
                yield name, node.lineno


def _graph():
    modules = dict(_modules())
    graph = {}
    for module, path in modules.items():
        targets = set()
        for name, line in _imports(module, path):
            while name not in modules and "." in name:
                name = name.rsplit(".", 1)[0]
            if name in modules and name != module and name != "vectorstream":
                targets.add((name, line))
        graph[module] = targets
    return modules, graph


def _layer(room: str) -> int:
    for i, rooms in enumerate(LAYERS):
        if room in rooms:
            return i
    raise AssertionError(f"room {room!r} is in no layer: add it to LAYERS and "
                         f"docs/architecture.md")


def test_imports_only_look_down():
    _, graph = _graph()
    wrong = []
    for module, targets in graph.items():
        room = _room(module)
        if not room:
            continue
        for target, line in targets:
            other = _room(target)
            if other == room or not other:
                continue
            if room in LEAVES or _layer(other) >= _layer(room):
                wrong.append(f"{module}:{line} imports {target} ({room} -> {other})")
    assert not wrong, "imports that do not look down:\n" + "\n".join(sorted(wrong))


def test_no_import_circle():
    _, graph = _graph()
    edges = {m: {t for t, _ in ts} for m, ts in graph.items()}
    state, stack, circles = {}, [], []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2
    for node in sorted(edges):
        if node not in state:
            visit(node)
    assert not circles, "import circles:\n" + "\n".join(" -> ".join(c) for c in circles)


def test_no_module_over_400_lines():
    long = [f"{m}: {len(p.read_text().splitlines())} lines" for m, p in _modules()
            if len(p.read_text().splitlines()) > 400]
    assert not long, "split these:\n" + "\n".join(long)


@pytest.mark.parametrize("asked", [r"StandardOptions\)\.runner\b", r"\.kafka_reader\b",
                                   r"\.environment_type\b", r"\bJVM_RUNNERS\b"])
def test_only_the_plan_asks_what_a_run_is_made_of(asked):
    """Which runner, reader or worker layout a run uses is decided in pipeline/plan.py
    (from the flags config/ declares); everyone else reads the plan."""
    allowed = {"vectorstream.pipeline.plan", "vectorstream.config.options",
               "vectorstream.config.presets"}
    askers = [m for m, p in _modules() if m not in allowed and re.search(asked, p.read_text())]
    assert not askers, f"{asked!r} read outside the plan: {askers}"
