"""Entry point of the ``runyard-launcher-docker`` distribution: the ``docker`` run launcher, the
``docker`` executor and the ``runyard docker`` commands."""

from runyard import hookimpl


@hookimpl
def runyard_register_run_launcher(registry):
    from .launcher import DockerRunLauncher

    registry.add("docker", DockerRunLauncher)


@hookimpl
def runyard_register_executor(registry):
    from .executor import DockerExecutor

    registry.add("docker", DockerExecutor)


@hookimpl
def runyard_register_commands(cli):
    from .cli import docker

    cli.add_command(docker)
