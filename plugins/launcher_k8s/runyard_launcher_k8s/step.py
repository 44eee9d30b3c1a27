"""What runs in a step pod: one attempt of one step, started by the ``k8s`` executor as
``python -m runyard_launcher_k8s.step RUN_ID STEP_KEY ATTEMPT``.

The program is core's step process (:mod:`runyard.execution.step_process`: open the instance from
the environment, run the attempt with events straight to storage, report the outcome as the last
line of stdout, which the executor reads from the pod's log; SIGTERM from the pod's deletion
interrupts the op). What is the pod's own: ``STEP_START`` names the pod (``pod``, ``namespace``, from
the downward API variables :func:`.manifests.environment` sets) and the process's pid inside it
(``pod_pid``); its ``pid`` is null, as no process of the run worker's machine runs the step.
"""

from __future__ import annotations

import os
from typing import Any

from runyard.execution.step_process import main as _main
from runyard.execution.step_process import run_as_main

POD_NAME_ENV = "RUNYARD_K8S_POD_NAME"
NAMESPACE_ENV = "RUNYARD_K8S_NAMESPACE"


def stamp() -> dict[str, Any]:
    # a pid inside a pod means nothing where the run worker or a user looks: the pod's name does
    return {"pid": None, "pod": os.environ.get(POD_NAME_ENV) or os.environ.get("HOSTNAME"),
            "namespace": os.environ.get(NAMESPACE_ENV), "pod_pid": os.getpid()}


OPTIONS: dict[str, Any] = {"program": "runyard_launcher_k8s.step", "where": "the step pod", "stamp": stamp}


def main(argv: list[str] | None = None) -> int:
    return _main(argv, **OPTIONS)


if __name__ == "__main__":
    run_as_main(**OPTIONS)
