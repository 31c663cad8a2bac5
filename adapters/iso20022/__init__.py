"""ISO 20022 <-> canonical: pacs, pain, camt and head messages (:mod:`.adapter`).

Parsing is hardened (:mod:`adapters.iso20022.safexml`), validation has two layers (XSD with
lxml, explained by xmlschema when it fails: :mod:`adapters.iso20022.validation`; business
rules: :mod:`adapters.iso20022.rules`), and the message catalogue
(:mod:`adapters.iso20022.catalog`) names every supported message version and its schema.
"""
