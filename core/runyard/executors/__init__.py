"""Executors: how a run's steps are scheduled. ``in_process`` lives here; others are plugins."""
