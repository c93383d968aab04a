"""The scaling section: every node on record, tokens/s per device against one node, and
whether the recipes' order changes with the node count. Figures from
distributed/scaling.py (node_scaling, ranking_changes); this module only lays them out."""

from __future__ import annotations

from mpbench.distributed.scaling import node_scaling, ranking_changes, recipe_label
from mpbench.report.blocks import Block, Note, Section, SetBlocks, Table, num, pct, text
from mpbench.report.resultset import ResultSet
from mpbench.results.payloads import NodeCard, ParallelResult


def _node_cards(s: ResultSet) -> list[NodeCard]:
    """The node cards of the set's latest launch (every record of a launch holds the same)."""
    for r in reversed(s.records):
        par = r.result(ParallelResult)
        if par is not None and par.node_cards:
            return par.node_cards
    return []


def _device(card: NodeCard) -> str:
    if card.gpus:
        return f"{len(card.gpus)} x {card.gpus[0]}" if len(set(card.gpus)) == 1 else ", ".join(
            card.gpus)
    return card.env.device_name("cuda") or "-"


def nodes_table(s: ResultSet) -> Table | None:
    cards = _node_cards(s)
    if not cards:
        return None
    rows = []
    for c in cards:
        env = c.env
        rows.append([text(f"node {c.node}"), text(c.host), text(", ".join(map(str, c.ranks))),
                     text(_device(c)), text(env.gpu.driver if env.gpu else None),
                     text(env.cuda), text(env.torch),
                     text(env.transformer_engine), text(env.torchao),
                     text((c.suite_sha256 or "")[:12] or None)])
    return Table(["node", "host", "ranks", "CPU / GPU", "driver", "CUDA", "torch", "TE",
                  "torchao", "suite sha256"], rows,
                 caption=f"Nodes of {s.label}: each node's environment card (checked alike "
                         "before training).", sortable=False)


def scaling_blocks(sets: list[ResultSet]) -> list[Block]:
    records = [r for s in sets for r in s.records]
    rows = node_scaling(records)
    if not any(row.nodes > 1 for row in rows):
        return [Note("One node only: run the same suite on several nodes (`mpbench launch`) "
                     "and report both results directories together to see scaling.", "missing")]
    cells = []
    for row in rows:
        model, _, seq, _, _ = row.recipe
        mode = {"baseline": "single-node baseline", "": "no single-node run"}.get(row.mode,
                                                                                   row.mode)
        cells.append([text(f"{model} {recipe_label(row.recipe)}"), num(row.nodes, 0),
                      num(row.world_size, 0), text(f"{row.per_device_batch} x {seq}"),
                      num(row.tokens_per_s_per_device, 0), pct(row.efficiency, 0), text(mode),
                      pct(row.exposed_comm_share, 0), num(row.runs, 0)])
    blocks: list[Block] = [Table(
        ["recipe", "nodes", "devices", "per-device batch x seq", "tokens/s per device",
         "efficiency vs 1 node", "scaling", "exposed comm", "runs"], cells,
        numeric={1, 2, 4, 5, 7, 8},
        caption="tokens/s per device = tokens/s / devices (a GPU, or a process on a CPU); "
                "efficiency = that rate / the single-node run's (weak: same per-device batch; "
                "strong: same global batch); exposed comm = the probe's forward+backward time "
                "with gradient sync minus without, as a share of it.")]
    for change in ranking_changes(rows):
        order = (f"1 node: {' > '.join(change.single_node)}; {change.nodes} nodes: "
                 f"{' > '.join(change.several)}")
        what = {"holds": "is the same on 1 and on {n} nodes",
                "changes": "changes from 1 to {n} nodes: every run of a recipe that was ahead "
                           "on one node is behind every run of another on {n}",
                "inconclusive": "differs between 1 and {n} nodes, but inconclusive: no two "
                                "recipes swap places with every run apart ({runs} run(s) per "
                                "recipe; repeats: --repeats N)"}[change.verdict]
        blocks.append(Note(
            f"{change.model}, seq {change.seq_len}, global batch {change.global_batch}: the "
            f"order of the recipes by tokens/s per device "
            f"{what.format(n=change.nodes, runs=change.min_runs)}. {order}.",
            "warn" if change.verdict == "changes" else "info"))
    return blocks


def scaling_section(sets: list[ResultSet]) -> Section | None:
    """None when no result set holds a distributed run."""
    if not any(r.result(ParallelResult) for s in sets for r in s.records):
        return None
    parts = [SetBlocks(s.label, [t]) for s in sets if (t := nodes_table(s)) is not None]
    parts.append(SetBlocks("all result sets", scaling_blocks(sets)))
    return Section("scaling", "Nodes and scaling",
                   "Every node a result set ran on, and throughput per device against the "
                   "same suite on one node.", parts)

