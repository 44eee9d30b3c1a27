"""What every front end does, in one place: the CLI, the daemon and the web UI call these and keep
only their own concerns (argument parsing and printing, loop timing and leadership, HTTP and
GraphQL).

One module per concern:

* :mod:`.launch` — launch a run from a code location (validate on its code server, the server's
  code pointer, the ``runyard/location`` tag, create, submit) or from definitions imported here.
* :mod:`.reexecute` — re-execute a finished run, planned from a location snapshot or from
  definitions.
* :mod:`.instigators` — schedules and sensors: list them with status, last tick and next fire
  time; start and stop them.
* :mod:`.follow` — follow a run's events: one loop that waits on storage notifications where the
  storage has them and polls otherwise.
* :mod:`.delete` — delete a finished run with its files, each component deleting its own.
* :mod:`.step_logs` — read a step's captured output in chunks.
* :mod:`.failure` — why a run failed or was canceled (the reason stored with its final event).
* :mod:`.serve` — serve until signalled (``runyard daemon``, ``dev``, ``webui``).
* :mod:`.workspace` — open a workspace from definitions files, a workspace file or neither; find
  locations, jobs and the location a run came from.
* :mod:`.serve` — serve until signalled: start services, wait for SIGINT/SIGTERM (the handler only
  sets a flag), stop them in reverse order, exit 0; and :class:`.serve.DevContext` /
  :class:`.serve.Service`, what plugins contribute to ``runyard dev``.
* :mod:`.errors` — what these refuse with, by kind (not found, unavailable, invalid), so a front
  end maps a refusal to its own vocabulary (exit code, GraphQL code) without parsing messages.

Nothing here imports user code except :func:`.launch.launch_from_definitions` and
:func:`.reexecute.reexecute_from_definitions`, which import the job in the calling process
(docs/operations.md).
"""
