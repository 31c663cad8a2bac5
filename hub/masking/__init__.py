"""Non-production copies of production data: ``isobridge mask``.

Card numbers, account numbers, IBANs, names, national ids and free text in ISO 8583
captures (:mod:`hub.masking.iso8583`), ISO 20022 files (:mod:`hub.masking.iso20022`) and
fixed-width mainframe files (:mod:`hub.masking.fixedwidth`) are replaced by keyed,
format-preserving values (:mod:`hub.masking.values`): the same value gives the same masked
value under the same key in every file, so joins across files still work, and a masked file
still decodes, validates and converts where the original did. It lives in ``hub`` because it
uses the adapters (formats) and the vault (FF1, master keys) together.
"""

from hub.masking.fixedwidth import FixedWidthMasker
from hub.masking.iso8583 import Iso8583Masker
from hub.masking.iso20022 import Iso20022Masker
from hub.masking.values import Masker, MaskingError, MaskingKey, RecordMaskingError

__all__ = [
    "FixedWidthMasker",
    "Iso20022Masker",
    "Iso8583Masker",
    "Masker",
    "MaskingError",
    "MaskingKey",
    "RecordMaskingError",
]
