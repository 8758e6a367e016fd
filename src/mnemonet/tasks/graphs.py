"""Graph tasks of the DNC paper (Graves et al. 2016): read a graph as triples, then answer a query about it.

A random directed graph has nodes with random labels (drawn without replacement from ``num_labels``)
and labelled edges; a node's outgoing edges carry distinct labels, so a start node and a list of edge
labels name one path. The graph is presented one ``(source, edge, destination)`` triple per step in a
random order, then one query:

- ``traversal``: a start node and a list of edge labels; answer: the triples of the path they name;
- ``shortest_path``: a source and a destination; answer: the triples of the shortest path between
  them (pairs are drawn so that it is unique);
- ``inference``: a start node and a composed relation "e1 then e2" (its own input code, one of E²);
  answer: the node it leads to (the intermediate node is never shown).

Each answer triple is scored by three softmaxes (source label, edge label, destination label); a query
counts as solved when every scored part of every answer step is right. A curriculum
(:class:`GraphCurriculum`) grows the graph size and the path length together, as the paper's lessons.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mnemonet._checks import check_positive
from mnemonet.tasks.base import Batch, Task, pad_sequences
from mnemonet.tasks.bits import check_range
from mnemonet.tasks.curricula import ThresholdCurriculum
from mnemonet.tasks.data import check_split
from mnemonet.tasks.scoring import check_logits

QUERIES = ("traversal", "shortest_path", "inference")
Triple = tuple[int, int, int]  # (source node, edge label, destination node); -1 = absent


class Graph(NamedTuple):
    """A directed graph with labelled nodes and edges.

    Attributes:
        labels: the label of each node (node i is labelled ``labels[i]``).
        edges: ``(source node, edge label, destination node)`` triples, in presentation order.
    """

    labels: list[int]
    edges: list[Triple]

    def out_edges(self, node: int) -> dict[int, int]:
        """``{edge label: destination node}`` of the edges leaving ``node``."""
        return {e: d for s, e, d in self.edges if s == node}


class Query(NamedTuple):
    """One query and its answer, in node indices (not labels).

    Attributes:
        kind: one of ``traversal``, ``shortest_path``, ``inference``.
        steps: the query's input triples (-1 where a part is not given).
        relation: the composed relation code ``e1 * E + e2`` (inference), else -1.
        answer: the answer triples (-1 where a part is not scored).
    """

    kind: str
    steps: list[Triple]
    relation: int
    answer: list[Triple]


def random_graph(
    num_nodes: int, num_labels: int, num_edge_labels: int, out_degree: tuple[int, int], generator: torch.Generator
) -> Graph:
    """A random graph: labels drawn without replacement, each node with ``out_degree`` edges (drawn in
    the range, capped by the other nodes and the edge labels) of distinct labels to distinct nodes;
    edges listed in a random order."""
    if num_nodes > num_labels:
        raise ValueError(f"num_nodes: expected at most num_labels={num_labels}, got {num_nodes}")
    labels = torch.randperm(num_labels, generator=generator)[:num_nodes].tolist()
    edges: list[Triple] = []
    for s in range(num_nodes):
        hi = min(out_degree[1], num_nodes - 1, num_edge_labels)
        d = int(torch.randint(min(out_degree[0], hi), hi + 1, (1,), generator=generator))
        names = torch.randperm(num_edge_labels, generator=generator)[:d].tolist()
        others = [n for n in torch.randperm(num_nodes, generator=generator).tolist() if n != s][:d]
        edges.extend((s, e, t) for e, t in zip(names, others, strict=True))
    order = torch.randperm(len(edges), generator=generator).tolist()
    return Graph(labels, [edges[i] for i in order])


def follow(graph: Graph, start: int, edge_labels: list[int]) -> list[Triple]:
    """The triples of the path from ``start`` along ``edge_labels`` (a KeyError if an edge is missing)."""
    path, node = [], start
    for e in edge_labels:
        nxt = graph.out_edges(node)[e]
        path.append((node, e, nxt))
        node = nxt
    return path


def shortest_paths(graph: Graph, source: int, dest: int, limit: int = 2) -> list[list[Triple]]:
    """Up to ``limit`` shortest paths from ``source`` to ``dest`` (breadth-first), each a list of triples.

    Returns an empty list when ``dest`` is unreachable or equals ``source``.

    Example:
        >>> g = Graph([7, 8, 9], [(0, 0, 1), (1, 1, 2), (2, 0, 0)])
        >>> shortest_paths(g, 0, 2)
        [[(0, 0, 1), (1, 1, 2)]]
    """
    if source == dest:
        return []
    dist = {source: 0}
    queue = deque([source])
    while queue:  # distances from source
        node = queue.popleft()
        for _, nxt in sorted(graph.out_edges(node).items()):
            if nxt not in dist:
                dist[nxt] = dist[node] + 1
                queue.append(nxt)
    if dest not in dist:
        return []

    def extend(path: list[Triple], node: int) -> list[list[Triple]]:
        if node == dest:
            return [path]
        found: list[list[Triple]] = []
        for e, nxt in sorted(graph.out_edges(node).items()):
            if dist.get(nxt) == dist[node] + 1 and dist[nxt] <= dist[dest]:
                found += extend([*path, (node, e, nxt)], nxt)
                if len(found) >= limit:
                    return found[:limit]
        return found

    return extend([], source)


class GraphTask(Task):
    """Graph traversal, shortest path and inference queries on random labelled graphs.

    With N = ``num_labels``, E = ``num_edge_labels``, x holds one-hot source, edge and destination
    labels, a one-hot composed relation and three phase flags (``D = 2N + E + E² + 3``)::

        phase          graph (one step per edge)   query                  think        answer
        x[src|edge|dst] s_i  e_i  d_i               query triples          0            0
        x[relation]     0                          r (inference only)     0            0
        x[flags]        graph=1                    query=1                0            answer=1
        target          -1                         -1                     -1           answer triples
        weight          0                          0                      0            1

    Query steps: traversal ``(start, e_1, -), (-, e_2, -) ... (-, e_L, -)``; shortest path ``(s, -, d)``;
    inference ``(start, -, -)`` with relation ``e_1 * E + e_2``. The target holds label ids per part
    (``[.., 3]``: source label, edge label, destination label), -1 where unscored; inference scores only
    the destination. The output is ``N + E + N`` logits (three softmaxes).

    Args:
        num_nodes: (lo, hi) graph size for ``"train"`` / ``"valid"``; the curriculum grows hi.
        path_length: (lo, hi) path length of traversal and shortest-path queries; the curriculum grows hi.
        test_num_nodes, test_path_length: the ranges of ``"test"``; None means the training ones.
        num_labels: N, node labels (at least the largest graph).
        num_edge_labels: E, edge labels.
        out_degree: (lo, hi) edges leaving each node.
        queries: the query kinds drawn (uniformly) per sequence.
        think_steps: blank steps between the query and the answer.

    Example:
        >>> task = GraphTask(num_nodes=(4, 4), path_length=(1, 2), num_labels=8, num_edge_labels=3)
        >>> batch = task.sample(2, torch.Generator().manual_seed(0))
        >>> task.input_size, task.output_size, tuple(batch.target.shape[2:])
        (31, 19, (3,))
    """

    name = "graph"
    kind = "classification"
    primary_metric = "accuracy"
    higher_is_better = True

    def __init__(
        self,
        num_nodes: tuple[int, int] = (3, 8),
        path_length: tuple[int, int] = (1, 3),
        test_num_nodes: tuple[int, int] | None = None,
        test_path_length: tuple[int, int] | None = None,
        num_labels: int = 16,
        num_edge_labels: int = 4,
        out_degree: tuple[int, int] = (1, 2),
        queries: tuple[str, ...] | list[str] = QUERIES,
        think_steps: int = 1,
    ) -> None:
        check_positive(num_labels, "num_labels")
        check_positive(num_edge_labels, "num_edge_labels")
        check_positive(think_steps, "think_steps", allow_zero=True)
        self.num_labels = num_labels
        self.num_edge_labels = num_edge_labels
        self.num_nodes = num_nodes
        self.path_length = path_length
        self.test_num_nodes = check_range(tuple(test_num_nodes or self.num_nodes), "test_num_nodes", 2)
        self.test_path_length = check_range(tuple(test_path_length or self.path_length), "test_path_length")
        if max(self.num_nodes[1], self.test_num_nodes[1]) > num_labels:
            raise ValueError(f"num_labels: expected at least the largest graph size, got {num_labels}")
        self.out_degree = check_range(tuple(out_degree), "out_degree")
        queries = list(queries)
        bad = [q for q in queries if q not in QUERIES]
        if bad or not queries:
            raise ValueError(f"queries: expected a non-empty list from {list(QUERIES)}, got {queries!r}")
        self.queries = queries
        self.think_steps = think_steps
        N, E = num_labels, num_edge_labels
        self.input_size = 2 * N + E + E * E + 3
        self.output_size = 2 * N + E

    @property
    def num_nodes(self) -> tuple[int, int]:
        """(lo, hi) graph sizes of training and validation graphs."""
        return self._num_nodes

    @num_nodes.setter
    def num_nodes(self, value: tuple[int, int]) -> None:
        self._num_nodes = check_range(tuple(value) if isinstance(value, list) else value, "num_nodes", 2)

    @property
    def path_length(self) -> tuple[int, int]:
        """(lo, hi) path lengths of training and validation queries."""
        return self._path_length

    @path_length.setter
    def path_length(self, value: tuple[int, int]) -> None:
        self._path_length = check_range(tuple(value) if isinstance(value, list) else value, "path_length")

    # ------------------------------------------------------------------------------------------
    # one sequence
    # ------------------------------------------------------------------------------------------

    def make_query(
        self, graph: Graph, kind: str, path_length: tuple[int, int], generator: torch.Generator
    ) -> Query | None:
        """A random query of ``kind`` on ``graph``, or None when the graph has none that fits."""
        n = len(graph.labels)
        L = int(torch.randint(path_length[0], path_length[1] + 1, (1,), generator=generator))
        if kind == "traversal":
            start, node, names = int(torch.randint(0, n, (1,), generator=generator)), None, []
            node = start
            for _ in range(L):
                out = sorted(graph.out_edges(node))
                if not out:
                    return None
                e = out[int(torch.randint(0, len(out), (1,), generator=generator))]
                names.append(e)
                node = graph.out_edges(node)[e]
            steps = [(start, names[0], -1)] + [(-1, e, -1) for e in names[1:]]
            return Query(kind, steps, -1, follow(graph, start, names))
        if kind == "inference":
            start = int(torch.randint(0, n, (1,), generator=generator))
            out1 = sorted(graph.out_edges(start))
            if not out1:
                return None
            e1 = out1[int(torch.randint(0, len(out1), (1,), generator=generator))]
            mid = graph.out_edges(start)[e1]
            out2 = sorted(graph.out_edges(mid))
            if not out2:
                return None
            e2 = out2[int(torch.randint(0, len(out2), (1,), generator=generator))]
            dest = graph.out_edges(mid)[e2]
            return Query(kind, [(start, -1, -1)], e1 * self.num_edge_labels + e2, [(-1, -1, dest)])
        pairs = torch.randperm(n * n, generator=generator).tolist()
        for p in pairs:  # shortest path: the first pair (in random order) whose unique shortest path fits
            s, d = divmod(p, n)
            paths = shortest_paths(graph, s, d, limit=2)
            if len(paths) == 1 and path_length[0] <= len(paths[0]) <= path_length[1]:
                return Query(kind, [(s, -1, d)], -1, paths[0])
        return None

    def encode(self, graph: Graph, query: Query) -> tuple[Tensor, Tensor, Tensor]:
        """The sequence of one graph and query: ``x [T, D]``, ``target [T, 3]`` (label ids, -1 unscored),
        ``weight [T]``, laid out as in the class docstring."""
        N, E = self.num_labels, self.num_edge_labels
        rel0, flag0 = 2 * N + E, 2 * N + E + E * E
        G, Q, A = len(graph.edges), len(query.steps), len(query.answer)
        T = G + Q + self.think_steps + A
        x = torch.zeros(T, self.input_size)
        target = torch.full((T, 3), -1, dtype=torch.int64)
        weight = torch.zeros(T)

        def put(t: int, triple: Triple) -> None:
            s, e, d = triple
            if s >= 0:
                x[t, graph.labels[s]] = 1.0
            if e >= 0:
                x[t, N + e] = 1.0
            if d >= 0:
                x[t, N + E + graph.labels[d]] = 1.0

        for t, triple in enumerate(graph.edges):
            put(t, triple)
            x[t, flag0] = 1.0  # graph phase
        for i, triple in enumerate(query.steps):
            put(G + i, triple)
            x[G + i, flag0 + 1] = 1.0  # query phase
        if query.relation >= 0:
            x[G, rel0 + query.relation] = 1.0
        start = G + Q + self.think_steps
        for i, (s, e, d) in enumerate(query.answer):
            x[start + i, flag0 + 2] = 1.0  # answer phase
            target[start + i] = torch.tensor([graph.labels[s] if s >= 0 else -1, e, graph.labels[d] if d >= 0 else -1])
            weight[start + i] = 1.0
        return x, target, weight

    def draw(self, generator: torch.Generator, split: str = "train") -> tuple[Graph, Query]:
        """A random graph and a query on it for ``split`` (graphs without a fitting query are redrawn)."""
        test = split == "test"
        nodes = self.test_num_nodes if test else self.num_nodes
        lengths = self.test_path_length if test else self.path_length
        kind = self.queries[int(torch.randint(0, len(self.queries), (1,), generator=generator))]
        for _ in range(1000):
            n = int(torch.randint(nodes[0], nodes[1] + 1, (1,), generator=generator))
            graph = random_graph(n, self.num_labels, self.num_edge_labels, self.out_degree, generator)
            query = self.make_query(graph, kind, lengths, generator)
            if query is not None:
                return graph, query
        raise ValueError(
            f"path_length: no {kind} query of length {lengths} found in 1000 graphs of {nodes} nodes; "
            "use shorter paths or larger graphs"
        )

    def sample(self, batch_size: int, generator: torch.Generator, split: str = "train") -> Batch:
        """Draw ``batch_size`` graphs with one query each, padded at the end to the longest.

        Returns:
            Batch with x `[B, T, D]`, target `[B, T, 3]` int64, weight `[B, T]`, lengths `[B]` (None when
            all equal) and info ``query`` `[B]` (index into ``QUERIES``), ``nodes`` `[B]`, ``answer_steps`` `[B]`.
        """
        split = check_split(split)
        check_positive(batch_size, "batch_size")
        parts, kinds, nodes, answers = [], [], [], []
        for _ in range(batch_size):
            graph, query = self.draw(generator, split)
            parts.append(self.encode(graph, query))
            kinds.append(QUERIES.index(query.kind))
            nodes.append(len(graph.labels))
            answers.append(len(query.answer))
        return pad_sequences(parts, target_fill=-1)._replace(
            info={
                "query": torch.tensor(kinds),
                "nodes": torch.tensor(nodes),
                "answer_steps": torch.tensor(answers),
            }
        )

    # ------------------------------------------------------------------------------------------
    # scoring
    # ------------------------------------------------------------------------------------------

    def part_logits(self, logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Split `[B, T, 2N + E]` logits into source `[B, T, N]`, edge `[B, T, E]`, destination `[B, T, N]`."""
        N, E = self.num_labels, self.num_edge_labels
        return logits[..., :N], logits[..., N : N + E], logits[..., N + E :]

    def loss(self, logits: Tensor, batch: Batch) -> Tensor:
        """Mean cross-entropy over the scored parts of the answer triples."""
        check_logits(logits, batch.x, self.output_size)
        return parts_cross_entropy(self.part_logits(logits), batch.target.to(logits.device))

    def metrics(self, logits: Tensor, batch: Batch) -> dict[str, float]:
        """``accuracy``: share of queries solved (every scored part of every answer step right);
        ``part_accuracy``: share of scored parts right; ``accuracy_<query>`` per query kind (NaN if absent)."""
        check_logits(logits, batch.x, self.output_size)
        solved, part_acc = parts_solved(self.part_logits(logits.detach()), batch.target.to(logits.device))
        out = {"accuracy": float(solved.float().mean()), "part_accuracy": part_acc}
        kinds = batch.info["query"].to(solved.device)
        for i, kind in enumerate(QUERIES):
            if kind in self.queries:
                sel = kinds == i
                out[f"accuracy_{kind}"] = float(solved[sel].float().mean()) if bool(sel.any()) else math.nan
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"num_nodes": list(self.num_nodes), "path_length": list(self.path_length)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.num_nodes = tuple(state["num_nodes"])
        self.path_length = tuple(state["path_length"])


def parts_cross_entropy(parts: tuple[Tensor, ...], target: Tensor) -> Tensor:
    """Mean cross-entropy over every scored (target >= 0) entry of ``target [B, T, K]``, part k scored by
    ``parts[k]`` `[B, T, C_k]` logits."""
    total = parts[0].new_zeros(())
    count = 0
    for k, part in enumerate(parts):
        y = target[..., k].reshape(-1)  # (B*T,)
        total = total + F.cross_entropy(part.reshape(y.shape[0], -1), y, ignore_index=-1, reduction="sum")
        count += int((y >= 0).sum())
    return total / max(count, 1)


def parts_solved(parts: tuple[Tensor, ...], target: Tensor) -> tuple[Tensor, float]:
    """Per sequence, whether every scored entry of ``target [B, T, K]`` is the argmax of its part
    (`[B]` bool), and the share of scored entries that are."""
    scored = target >= 0  # (B, T, K)
    right = torch.stack([p.argmax(-1) for p in parts], dim=-1) == target  # (B, T, K)
    wrong = scored & ~right
    n = int(scored.sum())
    return ~wrong.flatten(1).any(dim=1), (float((scored & right).sum()) / n if n else math.nan)


class GraphCurriculum(ThresholdCurriculum):
    """Lessons of growing graphs and paths (the DNC paper's graph curriculum), in ``stages`` steps.

    At level l of L = ``stages - 1``, the upper ends of the task's ``num_nodes`` and ``path_length`` ranges
    are ``lo + ceil(l (hi - lo) / L)`` of the ranges the task was built with, so the last level is the
    full task. A level is passed when ``metric`` reaches ``threshold``.

    Args:
        task: a :class:`GraphTask`.
        stages: number of lessons (at least 1).
        threshold, metric, higher_is_better, patience: as :class:`ThresholdCurriculum`.

    Example:
        >>> task = GraphTask(num_nodes=(3, 9), path_length=(1, 4))
        >>> cur = GraphCurriculum(task, stages=4)
        >>> task.num_nodes, task.path_length, cur.observe({"accuracy": 0.95}), task.num_nodes, task.path_length
        ((3, 3), (1, 1), True, (3, 5), (1, 2))
    """

    knob = "level"

    def __init__(
        self,
        task: Task,
        stages: int = 4,
        threshold: float = 0.9,
        metric: str = "accuracy",
        higher_is_better: bool | None = None,
        patience: int = 1,
    ) -> None:
        if not isinstance(task, GraphTask):
            raise ValueError(f"task: GraphCurriculum needs a GraphTask, got {type(task).__name__}")
        check_positive(stages, "stages")
        self._nodes, self._paths = task.num_nodes, task.path_length
        super().__init__(task, 0, stages - 1, 1, threshold, metric, higher_is_better, patience)

    def _apply(self, value: int) -> None:
        top = max(self.end, 1)

        def grow(lo_hi: tuple[int, int]) -> tuple[int, int]:
            lo, hi = lo_hi
            return lo, lo + math.ceil(value * (hi - lo) / top)

        self.task.num_nodes = grow(self._nodes)
        self.task.path_length = grow(self._paths)
