"""A code location with dynamic fan-out and an optional output, for the web UI's dynamic-output tests."""

import runyard as ry


@ry.op(out=ry.DynamicOut(int))
def split():
    for value, key in enumerate(["c", "a", "b"], start=1):
        yield ry.DynamicOutput(value, mapping_key=key)


class SquareConfig(ry.Config):
    fail_marker: str = ""  # while this file exists, the step of value 2 (key "a") fails


@ry.op
def square(config: SquareConfig, x: int) -> int:
    import os

    if x == 2 and config.fail_marker and os.path.exists(config.fail_marker):
        raise RuntimeError("the fail marker is there")
    return x * x


@ry.op(outs={"big": ry.Out(int, is_required=False), "small": ry.Out(int, is_required=False)})
def sizes(values: list):
    yield ry.Output(sum(values), "small")


@ry.op
def on_big(x: int) -> None:
    pass


@ry.job
def fanned():
    big, _small = sizes(split().map(square).collect())
    on_big(big)


defs = ry.Definitions(jobs=[fanned])
