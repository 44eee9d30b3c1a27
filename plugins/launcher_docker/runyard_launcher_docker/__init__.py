"""Docker run launcher and step executor for runyard."""
