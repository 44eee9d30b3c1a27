"""The instance: its file (``runyard.yaml``), env substitution, and the components it selects."""
