"""Entry point of the ``runyard-launcher-docker`` distribution: the ``docker`` run launcher, the
``docker`` executor and the ``runyard docker`` commands."""

from runyard import hookimpl


@hookimpl
def runyard_register_run_launcher(registry):
    registry.add("docker", "runyard_launcher_docker.launcher:DockerRunLauncher")


@hookimpl
def runyard_register_executor(registry):
    registry.add("docker", "runyard_launcher_docker.executor:DockerExecutor")


@hookimpl
def runyard_register_commands(cli):
    from .cli import docker

    cli.add_command(docker)
