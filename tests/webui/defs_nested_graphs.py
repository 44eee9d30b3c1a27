"""A code location with nested graphs, for the web UI's nested-graph tests."""

import runyard as ry


class AddConfig(ry.Config):
    n: int = 1


class Scale(ry.Config):
    factor: int = 3


@ry.op
def seed() -> int:
    return 1


@ry.op
def add(config: AddConfig, x: int) -> int:
    return x + config.n


@ry.op
def report(values: list) -> int:
    return sum(values)


@ry.graph
def inner(x):
    """Adds twice."""
    return add(add(x))


@ry.graph(config=ry.ConfigMapping(lambda cfg: {"add": {"config": {"n": cfg.factor}}}, config_schema=Scale))
def scaled(x):
    return add(x)


@ry.graph
def outer(x):
    """Two levels of graphs."""
    return {"deep": inner(inner(x)), "scaled": scaled(x)}


@ry.job
def nested_graphs():
    out = outer(seed())
    report([out.deep, out.scaled])


defs = ry.Definitions(jobs=[nested_graphs])
