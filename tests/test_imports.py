"""The package's import graph: library modules never import the command-line
tools, and no modules import each other in a circle."""
import ast
import pathlib

import helpers

PACKAGE = helpers.ROOT / "ssl_jax"


def _module(path: pathlib.Path) -> str:
  parts = path.relative_to(helpers.ROOT).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
  """module -> the ssl_jax modules it imports (anywhere in its code)."""
  modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
  graph = {}
  for name, path in modules.items():
    edges = set()
    for node in ast.walk(ast.parse(path.read_text())):
      if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom) and node.module:
        # `from a.b import c`: module a.b.c where it is one, else a.b.
        targets = [f"{node.module}.{a.name}"
                   if f"{node.module}.{a.name}" in modules else node.module
                   for a in node.names]
      else:
        continue
      edges.update(t for t in targets if t in modules and t != name)
    graph[name] = edges
  return graph


def _cycles(graph) -> list[list[str]]:
  """Strongly connected components with more than one module (Tarjan)."""
  index, low, stack, on_stack, out = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in graph[v]:
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        out.append(sorted(component))
  for v in sorted(graph):
    if v not in index:
      visit(v)
  return out


def test_the_graph_sees_imports_inside_functions():
  graph = _graph()
  assert "ssl_jax.models.torch_weights" in graph["ssl_jax.train.pretrained"]
  assert "ssl_jax.train.loop" in graph["ssl_jax.main"]


def test_no_library_module_imports_a_tool():
  graph = _graph()
  offenders = {m: sorted(e for e in edges if e.startswith("ssl_jax.tools"))
               for m, edges in graph.items()
               if not m.startswith("ssl_jax.tools")}
  assert not {m: e for m, e in offenders.items() if e}


def test_no_import_cycles():
  assert _cycles(_graph()) == []


def test_cycles_are_found():
  """The detector itself, on a graph with one circle."""
  graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
  assert _cycles(graph) == [["a", "b", "c"]]
