"""Entry point of the ``runyard-launcher-k8s`` distribution: the ``k8s`` run launcher, the ``k8s``
executor and the ``runyard k8s`` commands."""

from runyard import hookimpl


@hookimpl
def runyard_register_run_launcher(registry):
    registry.add("k8s", "runyard_launcher_k8s.launcher:K8sRunLauncher")


@hookimpl
def runyard_register_executor(registry):
    registry.add("k8s", "runyard_launcher_k8s.executor:K8sExecutor")


@hookimpl
def runyard_register_commands(cli):
    from .cli import k8s

    cli.add_command(k8s)
