"""The ``runyard`` command line (click). Heavy imports happen inside commands."""
