"""Graph tasks: shortest paths on hand-built graphs, the encoding of a known query, traversal / shortest
path / inference answers checked against the graph, scoring, the curriculum, reproducibility."""

import math

import pytest
import torch

from mnemonet.tasks.graphs import (
    QUERIES,
    Graph,
    GraphCurriculum,
    GraphTask,
    Query,
    follow,
    random_graph,
    shortest_paths,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# 0 -e0-> 1 -e1-> 2 -e0-> 0 : the only way from node 0 to node 2 is through node 1
TRIANGLE = Graph([7, 8, 9], [(0, 0, 1), (1, 1, 2), (2, 0, 0)])


def test_shortest_path_on_a_three_node_graph():
    assert shortest_paths(TRIANGLE, 0, 2) == [[(0, 0, 1), (1, 1, 2)]]
    assert shortest_paths(TRIANGLE, 2, 1) == [[(2, 0, 0), (0, 0, 1)]]
    assert shortest_paths(TRIANGLE, 1, 1) == []
    assert shortest_paths(Graph([0, 1, 2], [(0, 0, 1)]), 0, 2) == []  # unreachable
    diamond = Graph([0, 1, 2, 3], [(0, 0, 1), (0, 1, 2), (1, 0, 3), (2, 0, 3), (0, 2, 3)])
    assert shortest_paths(diamond, 0, 3) == [[(0, 2, 3)]]  # the direct edge beats both 2-edge paths
    two = Graph([0, 1, 2, 3], [(0, 0, 1), (0, 1, 2), (1, 0, 3), (2, 0, 3)])
    assert len(shortest_paths(two, 0, 3)) == 2


def test_encoding_of_the_known_shortest_path_query():
    task = GraphTask(num_nodes=(3, 3), num_labels=10, num_edge_labels=2, think_steps=1)
    N, E = 10, 2
    query = Query("shortest_path", [(0, -1, 2)], -1, shortest_paths(TRIANGLE, 0, 2)[0])
    x, target, weight = task.encode(TRIANGLE, query)
    assert x.shape == (3 + 1 + 1 + 2, 2 * N + E + E * E + 3)
    flags = 2 * N + E + E * E
    # graph phase: (7, e0, 8), (8, e1, 9), (9, e0, 7)
    for t, (s, e, d) in enumerate([(7, 0, 8), (8, 1, 9), (9, 0, 7)]):
        assert x[t].nonzero().flatten().tolist() == [s, N + e, N + E + d, flags]
    assert x[3].nonzero().flatten().tolist() == [7, N + E + 9, flags + 1]  # query: from 7 to 9
    assert x[4].abs().sum() == 0  # think step
    assert x[5].nonzero().flatten().tolist() == [flags + 2] and x[6].nonzero().flatten().tolist() == [flags + 2]
    assert target.tolist() == [[-1, -1, -1]] * 5 + [[7, 0, 8], [8, 1, 9]]
    assert weight.tolist() == [0, 0, 0, 0, 0, 1, 1]


def test_random_graphs_have_distinct_out_labels_and_labels():
    for seed in range(10):
        g = random_graph(6, 12, 3, (1, 3), gen(seed))
        assert len(set(g.labels)) == 6 and all(0 <= lab < 12 for lab in g.labels)
        for node in range(6):
            out = [(e, d) for s, e, d in g.edges if s == node]
            assert 1 <= len(out) <= 3 and len({e for e, _ in out}) == len(out)
            assert all(d != node for _, d in out)


@pytest.mark.parametrize("kind", QUERIES)
def test_queries_are_answered_by_the_graph(kind):
    task = GraphTask(num_nodes=(4, 7), path_length=(1, 3), num_labels=10, num_edge_labels=3, queries=[kind])
    for seed in range(20):
        graph, query = task.draw(gen(seed))
        edges = set(graph.edges)
        assert query.kind == kind
        if kind == "traversal":
            assert follow(graph, query.steps[0][0], [e for _, e, _ in query.steps]) == query.answer
            assert 1 <= len(query.answer) <= 3
        elif kind == "shortest_path":
            ((s, _, d),) = query.steps
            assert shortest_paths(graph, s, d, limit=5) == [query.answer]
            assert query.answer[0][0] == s and query.answer[-1][2] == d
        else:
            e1, e2 = divmod(query.relation, 3)
            path = follow(graph, query.steps[0][0], [e1, e2])
            assert query.answer == [(-1, -1, path[-1][2])]
        if kind != "inference":
            assert all(triple in edges for triple in query.answer)


def test_batches_are_seeded_padded_and_scored():
    task = GraphTask(num_nodes=(3, 5), path_length=(1, 2), num_labels=8, num_edge_labels=3)
    a, b = task.sample(6, gen(1)), task.sample(6, gen(1))
    assert torch.equal(a.x, b.x) and torch.equal(a.target, b.target)
    assert not torch.equal(a.x, task.sample(6, gen(2)).x)
    B, T, _ = a.x.shape
    assert a.target.shape == (B, T, 3) and task.output_size == 2 * 8 + 3
    lengths = a.lengths if a.lengths is not None else torch.full((B,), T)
    for i in range(B):
        assert a.weight[i, int(lengths[i]) :].sum() == 0 and a.weight[i].sum() == a.info["answer_steps"][i]
    # perfect logits from the targets solve every query; spoiling one scored part fails exactly that query
    logits = torch.zeros(B, T, task.output_size)
    offsets = (0, 8, 11)
    for k in range(3):
        b_idx, t_idx = (a.target[..., k] >= 0).nonzero(as_tuple=True)
        logits[b_idx, t_idx, offsets[k] + a.target[b_idx, t_idx, k]] = 10.0
    m = task.metrics(logits, a)
    assert m["accuracy"] == 1.0 and m["part_accuracy"] == 1.0
    b_idx, t_idx = (a.target[..., 2] >= 0).nonzero(as_tuple=True)
    logits[b_idx[0], t_idx[0], 8 + 3 :] = 0.0
    logits[b_idx[0], t_idx[0], 11 + (a.target[b_idx[0], t_idx[0], 2] + 1) % 8] = 10.0
    assert task.metrics(logits, a)["accuracy"] == pytest.approx(1 - 1 / B)
    assert float(task.loss(logits, a)) > 0


def test_per_query_accuracy_is_nan_when_absent():
    task = GraphTask(num_nodes=(3, 4), path_length=(1, 1), num_labels=6, num_edge_labels=2, queries=["inference"])
    batch = task.sample(3, gen(0))
    m = task.metrics(torch.zeros(*batch.x.shape[:2], task.output_size), batch)
    assert "accuracy_traversal" not in m and not math.isnan(m["accuracy_inference"])


def test_curriculum_grows_graphs_and_paths_and_resumes():
    task = GraphTask(num_nodes=(3, 9), path_length=(1, 4))
    cur = GraphCurriculum(task, stages=4, threshold=0.9)
    seen = [(task.num_nodes, task.path_length)]
    while cur.observe({"accuracy": 0.95}):
        seen.append((task.num_nodes, task.path_length))
    assert seen == [((3, 3), (1, 1)), ((3, 5), (1, 2)), ((3, 7), (1, 3)), ((3, 9), (1, 4))] and cur.finished
    assert not cur.observe({"accuracy": 1.0})
    fresh_task = GraphTask(num_nodes=(3, 9), path_length=(1, 4))
    fresh = GraphCurriculum(fresh_task, stages=4)
    fresh.load_state_dict({"stage": 2, "hits": 0})
    assert fresh_task.num_nodes == (3, 7) and fresh_task.path_length == (1, 3)


def test_test_split_uses_its_own_ranges_and_errors_name_arguments():
    task = GraphTask(num_nodes=(3, 4), test_num_nodes=(8, 8), num_labels=10)
    assert set(task.sample(4, gen(0), "test").info["nodes"].tolist()) == {8}
    with pytest.raises(ValueError, match="num_labels"):
        GraphTask(num_nodes=(3, 20), num_labels=10)
    with pytest.raises(ValueError, match="queries"):
        GraphTask(queries=["bfs"])
    with pytest.raises(ValueError, match="GraphTask"):
        GraphCurriculum(object())
