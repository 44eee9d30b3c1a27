"""The user's API: ops, jobs, resources, config, retry policies, IO managers, schedules, sensors
and the :class:`Definitions` object that holds them. ``from runyard import op, job, ...``."""
