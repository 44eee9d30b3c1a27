"""Kubernetes run launcher and step executor for runyard (distribution ``runyard-launcher-k8s``)."""
