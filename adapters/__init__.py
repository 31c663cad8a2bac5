"""Adapters: each wire format <-> the canonical model, behind one seam (:mod:`adapters.base`).

Framing (length headers, TPDU, RDW) lives in :mod:`adapters.framing` and is applied by the
edges; the registry (:mod:`adapters.registry`) finds adapters by name.
"""
