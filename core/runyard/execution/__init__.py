"""Running jobs: execution plans, the step runner, event sinks and the run worker."""
