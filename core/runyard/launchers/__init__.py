"""Run launchers: where a run worker runs. ``process`` (a local subprocess) lives here."""
