"""The hub: composition root (:mod:`hub.bootstrap`), the ``isobridge`` CLI, and (later) the
TCP edges and the service runner."""
