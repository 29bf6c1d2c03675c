"""A Kubernetes API server double for tests, served over real HTTP on 127.0.0.1.

It follows kube-apiserver behaviour closely enough that product code needs no special
cases. Deliberate simplifications (each also noted where it is implemented):

- no schema validation or defaulting of built-in kinds, and no managedFields;
- strategic merge patch acts as a JSON merge patch; server-side apply and dryRun are refused;
- controllers act at once: namespaces terminate and garbage collection runs synchronously,
  CRDs are Established on creation, a CRD's deletion removes its instances regardless of
  their finalizers; pods are deleted without a grace period (no kubelet);
- metadata.generation is kept for every kind; PUT never creates; list ``resourceVersion``
  other than ``resourceVersionMatch=Exact`` serves the latest state.
"""

from .server import KubeApiServer

__all__ = ["KubeApiServer"]
