"""The run tags runyard itself reads or writes, named once.

Every tag under the reserved ``runyard/`` prefix is defined here; code that sets or reads one
imports the constant instead of spelling the string, so a search for the constant finds every
writer and reader.

Reserved tags are set by runyard only: a user (``--tag``, GraphQL ``tags``, run config ``tags:``,
job tags, a run request's tags, the Python API) may set only :data:`USER_TAGS`, the ones documented
as settings of a run. :func:`check_user_tags` is the check the entry points call; it refuses the
others with :class:`ReservedTagError`, naming the tag (run config's ``tags:`` is checked with
:func:`reserved_tags` where run config is resolved, as a config error at ``tags.<tag>``). Runyard
never trusts a reserved tag for its own bookkeeping either (the daemon recognises a tick's runs by
the run ids it recorded on the tick), so a tag written past the entry points (straight into
storage) fools nobody.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .errors import ConfigError

#: the prefix of every tag below; a user's tags may use it only for :data:`USER_TAGS`
RESERVED_PREFIX = "runyard/"

#: the code location a run's job came from (its workspace entry's location name)
LOCATION_TAG = "runyard/location"

#: the container image of the run's code location (its workspace entry's ``image``, else the one its
#: code server reports); container launchers and executors run the run's worker and steps from it
IMAGE_TAG = "runyard/image"
#: the run's code location's ``container_context`` (its workspace entry's, as JSON): settings per
#: launcher name that container launchers and executors apply where their ``location_overrides`` allow
CONTAINER_CONTEXT_TAG = "runyard/container_context"

#: the schedule whose tick created the run
SCHEDULE_TAG = "runyard/schedule"
#: the sensor whose evaluation created the run
SENSOR_TAG = "runyard/sensor"
#: the id of the tick that created the run
TICK_TAG = "runyard/tick"
#: who launched the run by hand: from the web UI (launchpad, re-execute, GraphQL) the signed-in user
#: (``webui.auth``), else ``anonymous``; from ``runyard job launch`` the OS user (:func:`os_user`).
#: With SCHEDULE_TAG and SENSOR_TAG it says what launched a run (:class:`LaunchedBy`); a re-execution
#: keeps its parent's tags, this one set to who re-executed it from the web UI.
USER_TAG = "runyard/user"
#: a schedule's or sensor's run key: at most one run per instigator and key
RUN_KEY_TAG = "runyard/run_key"

#: integer; orders the run queue (higher first, then oldest first). As an op tag it orders the
#: steps that are ready at the same time.
PRIORITY_TAG = "runyard/priority"
#: seconds a started run may take before run monitoring terminates it
MAX_RUNTIME_TAG = "runyard/max_runtime"

#: the run a re-execution was made from
PARENT_RUN_ID_TAG = "runyard/parent_run_id"
#: the first run of a chain of re-executions
ROOT_RUN_ID_TAG = "runyard/root_run_id"

#: integer >= 0; how many times the daemon retries the run when it fails (``run_retries``; overrides
#: ``run_retries.max_retries``, counted along the chain of retries)
MAX_RETRIES_TAG = "runyard/max_retries"
#: comma-separated failure reasons (``oom_killed,start_timeout``; ``*``: any) the daemon retries the
#: run on (overrides ``run_retries.retry_on_reasons``)
RETRY_ON_REASONS_TAG = "runyard/retry_on_reasons"
#: on a retry made by the daemon: its attempt number (1 for the first retry of the root run)
RETRY_NUMBER_TAG = "runyard/retry_number"

#: the partition key a run is for (docs/partitions.md): set by runyard when a run is launched for a
#: partition (``--partition``, the launchpad, a schedule built from a partitioned job, a backfill)
#: after the key was checked against the job's partitions; ops read it as ``context.partition_key``
PARTITION_TAG = "runyard/partition"
#: the id of the backfill that created the run (docs/backfills.md); with ``runyard/partition``
BACKFILL_TAG = "runyard/backfill"

#: every tag name above, for documentation and checks
ALL_TAGS = (LOCATION_TAG, IMAGE_TAG, CONTAINER_CONTEXT_TAG,
            SCHEDULE_TAG, SENSOR_TAG, TICK_TAG, USER_TAG, RUN_KEY_TAG, PRIORITY_TAG, MAX_RUNTIME_TAG,
            PARENT_RUN_ID_TAG, ROOT_RUN_ID_TAG, MAX_RETRIES_TAG, RETRY_ON_REASONS_TAG, RETRY_NUMBER_TAG,
            PARTITION_TAG, BACKFILL_TAG)

#: the reserved tags a user may set: settings of a run, documented as such (docs/concepts.md).
#: Every other ``runyard/`` tag records what runyard did and is refused from users.
USER_TAGS = frozenset({PRIORITY_TAG, MAX_RUNTIME_TAG, MAX_RETRIES_TAG, RETRY_ON_REASONS_TAG})


class ReservedTagError(ConfigError):
    """A user tried to set a reserved ``runyard/`` tag (exit code 2); ``tag`` names it."""

    def __init__(self, message: str, *, tag: str, source: str | None = None, path: str | None = None):
        self.tag = tag
        super().__init__(message, source=source, path=path)


def reserved_tags(tags: Iterable[str] | None) -> list[str]:
    """The names in ``tags`` a user may not set (reserved and not in :data:`USER_TAGS`), sorted."""
    return sorted(k for k in (tags or ()) if str(k).startswith(RESERVED_PREFIX) and k not in USER_TAGS)


def reserved_tag_message(tag: str) -> str:
    """Why ``tag`` is refused, and what a user may set instead."""
    return (f"'{tag}' is a reserved tag: runyard sets {RESERVED_PREFIX}* tags itself (a user may set only "
            f"{', '.join(sorted(USER_TAGS))})")


def check_user_tags(tags: Mapping[str, str] | None, source: str = "tags", path: str | None = None) -> None:
    """Raise :class:`ReservedTagError` naming the first tag of ``tags`` a user may not set. ``source``
    says where the tags came from (``tags``, ``job 'etl'``, ``run request``), ``path`` the key path
    of the tags mapping inside it (the tag is appended)."""
    refused = reserved_tags(tags)
    if refused:
        tag = refused[0]
        raise ReservedTagError(reserved_tag_message(tag), tag=tag, source=source,
                               path=f"{path}.{tag}" if path else None)


# ---- launched by: what started a run, read from (and filtered on) the tags above ------------------
LAUNCHED_BY_KINDS = ("schedule", "sensor", "user", "manual")
_LAUNCHED_BY_KEYS = {"schedule": SCHEDULE_TAG, "sensor": SENSOR_TAG, "user": USER_TAG, "manual": USER_TAG}


@dataclass(frozen=True)
class LaunchedBy:
    """What launched a run: ``kind`` schedule, sensor or user (``name``: which one), or manual (any
    user). Written as ``schedule:<name>``, ``sensor:<name>``, ``user:<name>`` or ``manual`` (the runs
    list's ``launched_by`` filter); ``schedule`` or ``sensor`` without a name means any of them."""

    kind: str
    name: str | None = None

    @classmethod
    def parse(cls, text: str) -> LaunchedBy:
        """``schedule:nightly`` -> LaunchedBy("schedule", "nightly"); ValueError saying what is allowed."""
        kind, sep, name = text.strip().partition(":")
        if kind not in LAUNCHED_BY_KINDS or (sep and not name) or (kind == "manual" and sep):
            raise ValueError(f"launched_by {text!r} is not one of schedule:<name>, sensor:<name>, user:<name>, "
                             "manual (or schedule / sensor for any)")
        return cls(kind, name or None)

    @classmethod
    def of(cls, tags: Mapping[str, str]) -> LaunchedBy | None:
        """What launched a run with ``tags`` (None: unknown, e.g. launched by the CLI or the Python API)."""
        for kind in ("user", "schedule", "sensor"):
            if _LAUNCHED_BY_KEYS[kind] in tags:
                return cls(kind, tags[_LAUNCHED_BY_KEYS[kind]])
        return None

    def filter_tag(self) -> tuple[str, str | None]:
        """(tag key, value) runs launched this way carry; value None: any value."""
        return _LAUNCHED_BY_KEYS[self.kind], (self.name if self.kind != "manual" else None)

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}" if self.name else self.kind


def os_user() -> str:
    """The login name of this process's user (``runyard/user`` of a run launched from the CLI)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
        import os

        return f"uid:{os.getuid()}"
