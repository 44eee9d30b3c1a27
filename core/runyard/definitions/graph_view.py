"""The one view of a job's op graph that op selection and re-execution planning read.

Two things satisfy it: a :class:`runyard.definitions.job.JobDefinition` (in processes that import
the user's code: the code server, the run worker, ``runyard job execute``) and a
:class:`runyard.codeserver.snapshot.JobSnapshot` (in processes that must not: the web UI, the
daemon, the CLI talking to a code server). Writing the planning code against this protocol, not
against either class, is what keeps it to one implementation.

Nodes are named by their node name (an op's alias in the job), which is also the step key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class JobGraph(Protocol):
    """A job's ops and the edges between them."""

    @property
    def name(self) -> str:
        """The job's name (used in error messages)."""
        ...

    @property
    def topological_order(self) -> Sequence[str]:
        """Every node name, upstream before downstream; the order of the execution plan."""
        ...

    def has_node(self, node: str) -> bool:
        ...

    def upstream_of(self, node: str) -> set[str]:
        """The nodes whose outputs ``node`` reads directly (one level up)."""
        ...

    def input_sources(self, node: str) -> Mapping[str, Sequence[tuple[str, str]]]:
        """``{input name: [(upstream node, output name), ...]}`` for the connected inputs of
        ``node``; a fan-in input lists several sources."""
        ...

    def is_nothing_output(self, node: str, output: str) -> bool:
        """Whether ``node``'s ``output`` is a ``Nothing`` output, which only orders steps and holds
        no value (so a step reading it needs nothing stored)."""
        ...

    def downstream_of(self, node: str) -> set[str]:
        """Every node below ``node``, all levels (``node`` itself excluded)."""
        ...

    def graph_members(self, path: str) -> Sequence[str]:
        """The nodes inside the nested graph at dotted ``path`` (``outer.inner``), all levels, in
        topological order; empty when the job has no such graph (runyard.definitions.graphs)."""
        ...


def downstream_of(graph: JobGraph, node: str) -> set[str]:
    """:meth:`JobGraph.downstream_of` computed from :meth:`JobGraph.upstream_of` alone, for
    implementations that keep only upstream edges."""
    below: dict[str, set[str]] = {name: set() for name in graph.topological_order}
    for name in graph.topological_order:
        for up in graph.upstream_of(name):
            below[up].add(name)
    out: set[str] = set()
    frontier = [node]
    while frontier:
        for child in below.get(frontier.pop(), ()):
            if child not in out:
                out.add(child)
                frontier.append(child)
    return out
