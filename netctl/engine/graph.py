"""A small incremental processing engine: OVN's `lib/inc-proc-eng` idea, in Python.

The engine does not know what the nodes compute. It knows the nodes, the inputs of each (a
DAG), and for each (node, input) pair maybe a change handler. A round:
- input nodes were fed from outside (and say whether they changed);
- every other node, in dependency order, whose inputs changed, runs the handler of each
  changed input; a handler updates the node's data from that input's tracked changes and
  returns True, or returns False (it cannot) — and then, as when there is no handler, the
  node recomputes from all its inputs. Recomputes are counted per node: the fast path is the
  rule, the fallback always correct, and a person can see which one ran (`netctl status`,
  `netctl_engine_node_total{node,kind}`).
A node's data is read-only to the handlers of the nodes that depend on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Handler = Callable[[], bool]


@dataclass
class NodeStats:
    runs: int = 0  # rounds in which the node had something to do
    handled: int = 0  # input changes taken by a change handler
    recomputes: int = 0  # full recomputes (no handler, or a handler gave up)


class Node:
    """One node. Subclasses implement `recompute()` and, per input, a change handler (see
    `handlers`); `changed` says whether this round changed the node's data."""

    def __init__(self, name: str, inputs: Sequence[Node] = ()) -> None:
        self.name = name
        self.inputs = tuple(inputs)
        self.stats = NodeStats()
        self.changed = False
        self._handlers: dict[str, Handler] = {}

    def on(self, source: Node, handler: Handler) -> None:
        """Handle changes of `source` with `handler` (returns False to ask for a recompute)."""
        self._handlers[source.name] = handler

    def handler(self, source: Node) -> Handler | None:
        return self._handlers.get(source.name)

    def recompute(self) -> None:
        raise NotImplementedError

    def has_changed(self) -> bool:
        """Whether the round changed this node's data (asked after it ran)."""
        return True

    def clear(self) -> None:
        """Forget this round's tracked changes (after every node and the outputs ran)."""
        self.changed = False


class InputNode(Node):
    """A node fed from outside (xapi change sets, switch events)."""

    def recompute(self) -> None:  # an input has nothing to recompute from
        pass


@dataclass
class Engine:
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.nodes = _topological(self.nodes)

    def run(self, force: bool = False) -> None:
        """One round. `force`: recompute every non-input node (a cold start)."""
        for node in self.nodes:
            if isinstance(node, InputNode):
                continue
            changed_inputs = [i for i in node.inputs if i.changed]
            if not changed_inputs and not force:
                node.changed = False
                continue
            node.stats.runs += 1
            if force:
                node.stats.recomputes += 1
                node.recompute()
            else:
                for source in changed_inputs:
                    handler = node.handler(source)
                    if handler is not None and handler():
                        node.stats.handled += 1
                        continue
                    node.stats.recomputes += 1
                    node.recompute()
                    break
            node.changed = node.has_changed()

    def clear(self) -> None:
        for node in self.nodes:
            node.clear()

    def stats(self) -> dict[str, NodeStats]:
        return {n.name: n.stats for n in self.nodes if not isinstance(n, InputNode)}


def _topological(nodes: list[Node]) -> list[Node]:
    """Inputs before the nodes that read them (a cycle is a programming error)."""
    order: list[Node] = []
    state: dict[str, int] = {}

    def visit(node: Node) -> None:
        mark = state.get(node.name, 0)
        if mark == 2:
            return
        if mark == 1:
            raise ValueError(f"engine: a cycle through {node.name}")
        state[node.name] = 1
        for source in node.inputs:
            visit(source)
        state[node.name] = 2
        order.append(node)

    for node in nodes:
        visit(node)
    return order
