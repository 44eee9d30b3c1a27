"""How a container ended, and what it leaves: its state as runyard reads it, the typed reason a run
or step failed with (OOMKilled, killed, exit code, removed...), and the last lines of its output,
stored as an event before the container is removed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runyard.storage.records import Event, EventType

if TYPE_CHECKING:  # pragma: no cover
    from runyard.instance.instance import Instance

OUTPUT_EVENT_KIND = "container_output"


@dataclass
class ContainerState:
    """A container's state as runyard sees it."""

    status: str  # created | running | paused | restarting | removing | exited | dead | missing
    exit_code: int | None = None
    oom_killed: bool = False
    error: str = ""
    started_at: str = ""
    finished_at: str = ""
    created: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def alive(self) -> bool:
        return self.status in ("running", "paused", "restarting")

    @property
    def ended(self) -> bool:
        return self.status in ("exited", "dead", "missing") or (self.status == "created" and bool(self.error))


def state_of(container: Any | None) -> ContainerState:
    if container is None:
        return ContainerState("missing")
    state = container.attrs.get("State", {})
    return ContainerState(status=state.get("Status", "unknown"), exit_code=state.get("ExitCode"),
                          oom_killed=bool(state.get("OOMKilled")), error=state.get("Error") or "",
                          started_at=state.get("StartedAt") or "", finished_at=state.get("FinishedAt") or "",
                          created=container.attrs.get("Created") or "")


def death_reason(name: str, state: ContainerState, mem_limit: Any = None) -> tuple[str, str]:
    """(reason code, message) for a container that is no longer running."""
    if state.status == "missing":
        return "container_removed", f"container {name} was removed before the run finished"
    if state.oom_killed:
        limit = f" (mem_limit {mem_limit})" if mem_limit else ""
        return "oom_killed", (f"container {name} was killed for using more memory than its limit{limit}: OOMKilled, "
                              f"exit code {state.exit_code}")
    if state.error:
        return "start_error", f"container {name} could not run: {state.error}"
    code = state.exit_code
    if code == 137:
        return "killed", f"container {name} was killed (SIGKILL, exit code 137): docker kill, or the engine stopped it"
    if code == 143:
        return "terminated", f"container {name} was stopped (SIGTERM, exit code 143) before the run finished"
    if code == 0:
        return "exited", f"container {name} exited (code 0) without finishing the run"
    return "exit_code", f"container {name} exited with code {code}"


def output_tail(container: Any, lines: int) -> str:
    import docker

    if lines <= 0:
        return ""
    try:
        raw = container.logs(stdout=True, stderr=True, tail=lines, timestamps=False)
    except (docker.errors.NotFound, docker.errors.APIError):
        return ""
    return raw.decode("utf-8", errors="replace").rstrip("\n")


def output_event(run_id: str, container: Any, state: ContainerState, lines: int, *, step_key: str | None = None,
                 failed: bool = False) -> Event:
    """The last lines of a container's output, as the event stored before it is removed."""
    text = output_tail(container, lines)
    shown = len(text.splitlines()) if text else 0
    header = (f"Output of container {container.name} (last {shown} line{'s' if shown != 1 else ''}; exit code "
              f"{state.exit_code}{', OOMKilled' if state.oom_killed else ''}):")
    return Event(run_id=run_id, event_type=EventType.ENGINE_EVENT, step_key=step_key,
                 message=header + ("\n" + text if text else " (no output)"),
                 level="ERROR" if failed else "INFO",
                 data={"kind": OUTPUT_EVENT_KIND, "container": container.name, "container_id": container.id,
                       "exit_code": state.exit_code, "oom_killed": state.oom_killed, "lines": shown})


def output_stored(instance: Instance, run_id: str, container_id: str) -> bool:
    return any(e.data.get("kind") == OUTPUT_EVENT_KIND and e.data.get("container_id") == container_id
               for e in instance.storage.get_events(run_id, event_types=[EventType.ENGINE_EVENT]))
