"""Run coordinators: what happens to a submitted run. ``default`` (launch now) lives here."""
