"""Format-preserving encryption (NIST FF1, FF3, FF3-1) and format-preserving card tokens.

Standards
    :class:`FF1` and :class:`FF3` follow NIST SP 800-38G (2016), *Recommendation for Block
    Cipher Modes of Operation: Methods for Format-Preserving Encryption*. :class:`FF3_1`
    follows the SP 800-38G Rev.1 draft (2019): FF3 with a 56-bit tweak, whose 7 bytes
    ``T`` are expanded into the two 32-bit halves ``T_L = T[0..27] || 0^4`` and
    ``T_R = T[32..55] || T[28..31] || 0^4`` (bit indexes). The block cipher is AES-128,
    AES-192 or AES-256 (16, 24 or 32 byte keys) from :mod:`cryptography`: FF1's PRF is
    CBC-MAC (AES-CBC, zero IV, last block), FF3's round function is one AES block under the
    byte-reversed key.

Caveats (those of ``shared/vault/fpe_vectors.json``)
    - FF3 with its 64-bit tweak is the original 2016 algorithm; after the 2017
      Durak-Vaudenay attack the Rev.1 drafts replace it by FF3-1, and the February 2025
      second public draft of Rev.1 removes FF3 and FF3-1 altogether. :class:`FF3` is here
      to reproduce the NIST FF3 samples; do not use it for new data. :func:`fpe_tokenize`
      refuses it. FF3-1 is kept for the vault's ``"ff3-1"`` mode; prefer FF1.
    - The FF3-1 vectors are draft ACVP vectors and BouncyCastle self-test values, not
      vectors of a final NIST publication.
    - The NIST FF1 samples use 10-symbol inputs (domain ``10**10``), above the Rev.1
      minimum domain of ``10**6``; so do all the other vectors.

Domain and lengths
    Symbol ``i`` of the alphabet is numeral ``i``. The default alphabet of radix ``r <= 36``
    is the first ``r`` of ``0-9a-z`` (decimal digits for the default radix 10); a larger
    radix (up to ``2**16``) needs an ``alphabet``. Every input must have a domain
    ``radix**length`` of at least :data:`MIN_DOMAIN` (``10**6``, the Rev.1 draft minimum:
    6 decimal digits); no official vector is below it, so the minimum is not configurable.
    The longest input is :data:`FF1_MAX_LENGTH` symbols for FF1 (an implementation limit,
    well below the standard's ``2**32``) and ``2 * floor(log_radix(2**96))`` for FF3 and
    FF3-1 (56 decimal digits). FF1 takes a tweak of 0 to ``max_tweak_length`` bytes (256 by
    default; the empty tweak is the default tweak); FF3 takes exactly 8 bytes and FF3-1
    exactly 7, and for these two the tweak has no default.

Card-number tokens (:func:`fpe_tokenize`, :func:`fpe_detokenize`)
    A token has the card number's length, keeps its first ``keep_first`` and last
    ``keep_last`` digits, and fails the Luhn check on purpose, so it can never be taken for
    a card number. Let ``m`` be the ``n`` middle digits (``n >= 6``: a domain of at least
    ``10**6``) and ``S`` the set of middles that make the whole number Luhn-valid with the
    kept digits. Tokenizing encrypts inside ``S`` by cycle walking (``y = E(m)``; while
    ``y`` is not in ``S``: ``y = E(y)``), then adds 1 (mod 10) to the last middle digit.
    Detokenizing subtracts that 1 again, giving ``y`` in ``S``, and walks back with ``D``.

    Why this is a bijection: ``E`` permutes all ``10**n`` middles, and the first return of
    a permutation to a subset permutes that subset (the walk from ``m`` in ``S`` ends at
    the latest when the cycle of ``E`` comes back to ``m``), so the walk permutes ``S`` and
    ``D`` walks it back. In the Luhn sum a digit counts as ``d`` or as its doubled value,
    and both maps are permutations of 0-9; so once the other digits are fixed, exactly one
    value of the last middle digit makes the number Luhn-valid. Adding 1 to that digit is
    therefore injective on ``S`` and always gives a Luhn-invalid number, and it is undone
    without ambiguity. A value whose undone middle is not in ``S`` is no token of this
    construction and is refused (walking back from it might never end). The walk takes 10
    encryptions on average (a tenth of all middles is in ``S``).

    Tokens are deterministic (same card number, cipher key, tweak and kept digits: same
    token) and there are ``10**(n-1)`` of them per kept prefix and suffix (``|S|``), as for
    any Luhn-failing token that keeps those digits. The tweak separates tenants.

Errors
    :class:`FpeError` (a :class:`~vault.errors.VaultError` and a ``ValueError``) for a key
    that is not 16, 24 or 32 bytes, a bad radix or alphabet, a symbol outside the alphabet,
    a length outside the algorithm's bounds or below the minimum domain, a tweak of the
    wrong length, a card number that is not 12-19 ASCII digits passing Luhn, kept digits
    leaving fewer than 6 middle digits, or a value that is not a token. ``TypeError`` for a
    value of the wrong type. No error text holds the plaintext, the ciphertext, the card
    number or the token: only lengths, positions and reasons.

Performance
    Each instance builds its AES context once; per length and tweak, the CBC-MAC state of
    FF1's fixed blocks (``P`` and the tweak) and the round constants are computed once and
    cached (a bounded cache). A round is then one AES block and a few integer operations.
    Instances can be shared between threads (each AES block is one call into
    :mod:`cryptography`'s stateless ECB context; the cache is a plain ``dict``).

>>> ff1 = FF1(bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C"))  # NIST FF1 sample 1
>>> ff1.encrypt("0123456789")
'2433477484'
>>> ff1.decrypt("2433477484")
'0123456789'
>>> token = fpe_tokenize("4111111111111111", ff1, b"tenant acme")
>>> len(token), token[:6], token[-4:], luhn_valid(token)
(16, '411111', '1111', False)
>>> fpe_detokenize(token, ff1, b"tenant acme")
'4111111111111111'
"""

from __future__ import annotations

from typing import ClassVar, Final, Protocol

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from canonical_model.pan import luhn_valid
from vault.errors import VaultError

__all__ = [
    "FF1",
    "FF1_MAX_LENGTH",
    "FF3",
    "FF3_1",
    "MIN_DOMAIN",
    "FpeError",
    "fpe_detokenize",
    "fpe_tokenize",
]

MIN_DOMAIN: Final = 1_000_000
"""The smallest domain ``radix**length`` accepted (NIST SP 800-38G Rev.1 draft)."""
FF1_MAX_LENGTH: Final = 4096
"""The longest FF1 input in symbols (implementation limit; the standard allows < 2**32)."""
_MAX_RADIX: Final = 1 << 16
_KEY_SIZES: Final = (16, 24, 32)
_BASE36: Final = "0123456789abcdefghijklmnopqrstuvwxyz"
_DIGITS: Final = "0123456789"
_PLAN_CACHE_SIZE: Final = 256
_MIN_PAN_LENGTH: Final = 12
_MAX_PAN_LENGTH: Final = 19
_MIN_MIDDLE: Final = 6  # 10**6 == MIN_DOMAIN
# Luhn: byte b"0".."9" -> the doubled digit's contribution; last middle digit +1 / -1.
_LUHN_DOUBLED: Final = bytes.maketrans(b"0123456789", bytes((0, 2, 4, 6, 8, 1, 3, 5, 7, 9)))
_PLUS_ONE: Final = str.maketrans("0123456789", "1234567890")
_MINUS_ONE: Final = str.maketrans("0123456789", "9012345678")


class FpeError(VaultError, ValueError):
    """A format-preserving encryption input or setting that cannot be used.

    The text gives lengths, positions and reasons, never the value itself.
    """


class _Plan(Protocol):
    """The permutation of ``[0, radix**n)`` for one length ``n`` and one tweak."""

    def encrypt(self, x: int) -> int: ...

    def decrypt(self, x: int) -> int: ...


def _aes_ecb(key: bytes) -> Cipher[modes.ECB]:
    # FF1 / FF3-1 use AES on single blocks as their round function (NIST SP 800-38G)
    return Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305


class _FpeCipher:
    """What FF1, FF3 and FF3-1 share: the key, the alphabet, numerals and length bounds."""

    __slots__ = (
        "_aes",
        "_alphabet",
        "_from_canonical",
        "_index",
        "_max_length",
        "_min_length",
        "_plans",
        "_radix",
        "_to_canonical",
    )

    algorithm: ClassVar[str]
    _reversed_numerals: ClassVar[bool] = False

    def __init__(self, key: bytes, *, radix: int = 10, alphabet: str | None = None) -> None:
        if not isinstance(key, bytes | bytearray | memoryview):
            raise TypeError(f"{self.algorithm} key must be bytes, got {type(key).__name__}")
        key = bytes(key)
        if len(key) not in _KEY_SIZES:
            raise FpeError(
                f"{self.algorithm} needs an AES key of 16, 24 or 32 bytes, got {len(key)} bytes"
            )
        if isinstance(radix, bool) or not isinstance(radix, int):
            raise TypeError(f"radix must be an int, got {type(radix).__name__}")
        if not 2 <= radix <= _MAX_RADIX:
            raise FpeError(f"radix must be 2 to {_MAX_RADIX}, got {radix}")
        if alphabet is None:
            if radix > len(_BASE36):
                raise FpeError(f"radix {radix} needs an alphabet (the default covers up to 36)")
            alphabet = _BASE36[:radix]
        elif not isinstance(alphabet, str):
            raise TypeError(f"alphabet must be a str, got {type(alphabet).__name__}")
        if len(alphabet) != radix:
            raise FpeError(f"the alphabet has {len(alphabet)} symbols, radix is {radix}")
        if len(set(alphabet)) != radix:
            raise FpeError("the alphabet repeats a symbol")
        self._radix = radix
        self._alphabet = alphabet
        self._index = {symbol: i for i, symbol in enumerate(alphabet)}
        # int(text, radix) and format() work on 0-9a-z; other alphabets are translated.
        canonical = _BASE36[:radix] if radix <= len(_BASE36) else None
        if canonical is None or canonical == alphabet:
            self._to_canonical: dict[int, int] | None = None
            self._from_canonical: dict[int, int] | None = None
        else:
            self._to_canonical = str.maketrans(alphabet, canonical)
            self._from_canonical = str.maketrans(canonical, alphabet)
        min_length = 1
        while radix**min_length < MIN_DOMAIN:
            min_length += 1
        self._min_length = max(min_length, 2)
        self._max_length = self._longest(radix)
        self._aes = self._block_cipher(key).encryptor().update
        self._plans: dict[tuple[int, bytes], _Plan] = {}

    # -- what the algorithms define ------------------------------------------------------

    @classmethod
    def _longest(cls, radix: int) -> int:
        raise NotImplementedError

    def _block_cipher(self, key: bytes) -> Cipher[modes.ECB]:
        return _aes_ecb(key)

    def _new_plan(self, n: int, tweak: bytes) -> _Plan:
        raise NotImplementedError

    def _check_tweak(self, tweak: bytes) -> None:
        raise NotImplementedError

    # -- public --------------------------------------------------------------------------

    @property
    def radix(self) -> int:
        """The number of symbols."""
        return self._radix

    @property
    def alphabet(self) -> str:
        """The symbols; symbol ``i`` is numeral ``i``."""
        return self._alphabet

    @property
    def min_length(self) -> int:
        """The shortest input: the fewest symbols with ``radix**length >= MIN_DOMAIN``."""
        return self._min_length

    @property
    def max_length(self) -> int:
        """The longest input, in symbols."""
        return self._max_length

    def _encrypt(self, plaintext: str, tweak: bytes) -> str:
        n = self._check_text(plaintext, "plaintext")
        plan = self._plan(n, tweak)
        return self._text(plan.encrypt(self._number(plaintext)), n)

    def _decrypt(self, ciphertext: str, tweak: bytes) -> str:
        n = self._check_text(ciphertext, "ciphertext")
        plan = self._plan(n, tweak)
        return self._text(plan.decrypt(self._number(ciphertext)), n)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(radix={self._radix}, alphabet={self._alphabet!r})"

    # -- internals -----------------------------------------------------------------------

    def _plan(self, n: int, tweak: bytes) -> _Plan:
        """The cached permutation for length ``n`` and ``tweak`` (checked here)."""
        if type(tweak) is not bytes:
            if not isinstance(tweak, bytes | bytearray | memoryview):
                raise TypeError(f"tweak must be bytes, got {type(tweak).__name__}")
            tweak = bytes(tweak)
        plans = self._plans
        plan = plans.get((n, tweak))
        if plan is None:
            self._check_tweak(tweak)
            plan = self._new_plan(n, tweak)
            if len(plans) >= _PLAN_CACHE_SIZE:
                plans.clear()
            plans[(n, tweak)] = plan
        return plan

    def _check_length(self, n: int, what: str) -> None:
        if n < self._min_length:
            raise FpeError(
                f"{self.algorithm} {what} of {n} symbols in radix {self._radix} has a domain "
                f"below {MIN_DOMAIN:,} (NIST SP 800-38G Rev.1); it needs at least "
                f"{self._min_length} symbols"
            )
        if n > self._max_length:
            raise FpeError(
                f"{self.algorithm} {what} of {n} symbols is too long: at most "
                f"{self._max_length} in radix {self._radix}"
            )

    def _check_text(self, text: str, what: str) -> int:
        """The length of ``text`` once it is known to be a valid input."""
        if not isinstance(text, str):
            raise TypeError(f"{what} must be a str, got {type(text).__name__}")
        n = len(text)
        self._check_length(n, what)
        alphabet = self._alphabet
        # str.strip scans its argument per symbol: a set for large alphabets.
        outside = text.strip(alphabet) if len(alphabet) <= 64 else set(text) - self._index.keys()
        if outside:
            index = self._index
            position = next(i for i, symbol in enumerate(text) if symbol not in index)
            raise FpeError(
                f"{what} symbol at position {position} is not in the "
                f"{self.algorithm} alphabet of radix {self._radix}"
            )
        return n

    def _number(self, text: str) -> int:
        """NUM_radix of ``text`` (of its reverse for FF3); ``text`` already checked."""
        if self._reversed_numerals:
            text = text[::-1]
        if self._radix <= len(_BASE36):
            if self._to_canonical is not None:
                text = text.translate(self._to_canonical)
            return int(text, self._radix)
        radix = self._radix
        index = self._index
        x = 0
        for symbol in text:
            x = x * radix + index[symbol]
        return x

    def _text(self, x: int, n: int) -> str:
        """STR^n_radix of ``x`` (reversed for FF3)."""
        radix = self._radix
        if radix == 10:
            text = f"{x:0{n}d}"
        elif radix == 16:
            text = f"{x:0{n}x}"
        elif radix == 2:
            text = f"{x:0{n}b}"
        elif radix == 8:
            text = f"{x:0{n}o}"
        else:
            symbols = _BASE36 if radix <= len(_BASE36) else self._alphabet
            out = [""] * n
            for i in range(n - 1, -1, -1):
                x, digit = divmod(x, radix)
                out[i] = symbols[digit]
            text = "".join(out)
            if radix > len(_BASE36):
                return text[::-1] if self._reversed_numerals else text
        if self._from_canonical is not None:
            text = text.translate(self._from_canonical)
        return text[::-1] if self._reversed_numerals else text


# -- FF1 ----------------------------------------------------------------------------------


class _FF1Plan:
    """FF1 for one length and tweak: the CBC-MAC state of the fixed blocks, precomputed."""

    __slots__ = ("_aes", "_chain", "_extra", "_mod_u", "_mod_v", "_round", "_shift", "_tail")

    def __init__(self, aes: _Update, radix: int, n: int, tweak: bytes) -> None:
        u = n // 2
        v = n - u
        top: int = radix**v - 1
        b = (top.bit_length() + 7) // 8
        d = 4 * ((b + 3) // 4) + 4
        t = len(tweak)
        p = (
            bytes((1, 2, 1))
            + radix.to_bytes(3, "big")
            + bytes((10, u % 256))
            + n.to_bytes(4, "big")
            + t.to_bytes(4, "big")
        )
        # Q = T || 0^((-t-b-1) mod 16) || [i]_1 || [NUM(B)]_b. Everything before the blocks
        # holding [i]_1 || [NUM(B)]_b is the same in every round: its CBC-MAC state is kept.
        padded = tweak + bytes((-t - b - 1) % 16)
        tail_length = 16 * ((b + 16) // 16)  # the blocks holding [i]_1 || [NUM(B)]_b
        head_length = len(padded) + 1 + b - tail_length
        chain = 0
        head = p + padded[:head_length]
        for offset in range(0, len(head), 16):
            block = chain ^ int.from_bytes(head[offset : offset + 16], "big")
            chain = int.from_bytes(aes(block.to_bytes(16, "big")), "big")
        tail_prefix = int.from_bytes(padded[head_length:], "big") << (8 * (b + 1))
        self._aes = aes
        self._mod_u: int = radix**u
        self._mod_v: int = radix**v
        self._extra = (d + 15) // 16 - 1  # blocks of S beyond R
        self._shift = 8 * (16 * (self._extra + 1) - d)
        if tail_length == 16:
            # One block per round: chain ^ (prefix || [i]_1 || [NUM(B)]_b).
            self._chain = 0
            self._tail = 0
            self._round = tuple(chain ^ tail_prefix ^ (i << (8 * b)) for i in range(10))
        else:
            self._chain = chain
            self._tail = tail_length // 16
            self._round = tuple(tail_prefix | (i << (8 * b)) for i in range(10))

    def _y(self, i: int, numeral: int) -> int:
        """NUM(S) of round ``i``, general case (several tail blocks, or d > 16)."""
        aes = self._aes
        if self._tail:
            tail = self._round[i] | numeral
            chain = self._chain
            for k in range(self._tail - 1, -1, -1):
                block = chain ^ ((tail >> (128 * k)) & ((1 << 128) - 1))
                chain = int.from_bytes(aes(block.to_bytes(16, "big")), "big")
            r = chain
        else:
            r = int.from_bytes(aes((self._round[i] ^ numeral).to_bytes(16, "big")), "big")
        if not self._extra:
            return r >> self._shift
        more = aes(b"".join((r ^ j).to_bytes(16, "big") for j in range(1, self._extra + 1)))
        return ((r << (8 * len(more))) | int.from_bytes(more, "big")) >> self._shift

    def encrypt(self, x: int) -> int:
        mod_u = self._mod_u
        mod_v = self._mod_v
        a, b = divmod(x, mod_v)
        if self._tail or self._extra:
            y = self._y
            for i in range(0, 10, 2):
                a = (a + y(i, b)) % mod_u
                b = (b + y(i + 1, a)) % mod_v
            return a * mod_v + b
        aes = self._aes
        fb = int.from_bytes
        shift = self._shift
        r0, r1, r2, r3, r4, r5, r6, r7, r8, r9 = self._round
        for even, odd in ((r0, r1), (r2, r3), (r4, r5), (r6, r7), (r8, r9)):
            # Round i: C = A + y(B); A, B = B, C. Two rounds in place: no swaps.
            a = (a + (fb(aes((even ^ b).to_bytes(16))) >> shift)) % mod_u
            b = (b + (fb(aes((odd ^ a).to_bytes(16))) >> shift)) % mod_v
        return a * mod_v + b

    def decrypt(self, x: int) -> int:
        mod_u = self._mod_u
        mod_v = self._mod_v
        a, b = divmod(x, mod_v)
        if self._tail or self._extra:
            y = self._y
            for i in range(8, -1, -2):
                b = (b - y(i + 1, a)) % mod_v
                a = (a - y(i, b)) % mod_u
            return a * mod_v + b
        aes = self._aes
        fb = int.from_bytes
        shift = self._shift
        r0, r1, r2, r3, r4, r5, r6, r7, r8, r9 = self._round
        for even, odd in ((r8, r9), (r6, r7), (r4, r5), (r2, r3), (r0, r1)):
            b = (b - (fb(aes((odd ^ a).to_bytes(16))) >> shift)) % mod_v
            a = (a - (fb(aes((even ^ b).to_bytes(16))) >> shift)) % mod_u
        return a * mod_v + b


class _Update(Protocol):
    def __call__(self, data: bytes, /) -> bytes: ...


class FF1(_FpeCipher):
    """NIST SP 800-38G FF1 over AES: 10 Feistel rounds, PRF = AES-CBC-MAC.

    ``key`` is 16, 24 or 32 bytes; ``radix`` 2 to 65536 with ``alphabet`` (default: the
    first ``radix`` symbols of ``0-9a-z``); tweaks of 0 to ``max_tweak_length`` bytes.
    """

    __slots__ = ("_max_tweak_length",)
    algorithm: ClassVar[str] = "FF1"

    def __init__(
        self,
        key: bytes,
        *,
        radix: int = 10,
        alphabet: str | None = None,
        max_tweak_length: int = 256,
    ) -> None:
        super().__init__(key, radix=radix, alphabet=alphabet)
        if isinstance(max_tweak_length, bool) or not isinstance(max_tweak_length, int):
            raise TypeError("max_tweak_length must be an int")
        if not 0 <= max_tweak_length < 1 << 32:
            raise FpeError(f"max_tweak_length must be 0 to 2**32 - 1, got {max_tweak_length}")
        self._max_tweak_length = max_tweak_length

    def encrypt(self, plaintext: str, tweak: bytes = b"") -> str:
        """The ciphertext of ``plaintext``: same length, same alphabet."""
        return self._encrypt(plaintext, tweak)

    def decrypt(self, ciphertext: str, tweak: bytes = b"") -> str:
        """The plaintext of ``ciphertext`` (the same ``tweak`` as for encrypting)."""
        return self._decrypt(ciphertext, tweak)

    @property
    def max_tweak_length(self) -> int:
        """The longest tweak accepted, in bytes."""
        return self._max_tweak_length

    @classmethod
    def _longest(cls, radix: int) -> int:
        return FF1_MAX_LENGTH

    def _check_tweak(self, tweak: bytes) -> None:
        if len(tweak) > self._max_tweak_length:
            raise FpeError(
                f"FF1 tweak of {len(tweak)} bytes is longer than max_tweak_length "
                f"({self._max_tweak_length})"
            )

    def _new_plan(self, n: int, tweak: bytes) -> _Plan:
        return _FF1Plan(self._aes, self._radix, n, tweak)


# -- FF3 and FF3-1 ------------------------------------------------------------------------


class _FF3Plan:
    """FF3 for one length and tweak: the eight round constants ``(W xor [i]_4) << 96``."""

    __slots__ = ("_aes", "_mod_u", "_mod_v", "_round")

    def __init__(self, aes: _Update, radix: int, n: int, left: bytes, right: bytes) -> None:
        u = (n + 1) // 2
        self._aes = aes
        self._mod_u: int = radix**u
        self._mod_v: int = radix ** (n - u)
        t_l = int.from_bytes(left, "big")
        t_r = int.from_bytes(right, "big")
        self._round = tuple(((t_r if i % 2 == 0 else t_l) ^ i) << 96 for i in range(8))

    # Numbers are NUM_radix(REV(.)): x = NUM(REV(B)) * radix**u + NUM(REV(A)).
    # P = REVB(...) in and out of AES: little-endian conversions do both reversals.

    def encrypt(self, x: int) -> int:
        aes = self._aes
        fb = int.from_bytes
        mod_u = self._mod_u
        mod_v = self._mod_v
        b, a = divmod(x, mod_u)
        r0, r1, r2, r3, r4, r5, r6, r7 = self._round
        for even, odd in ((r0, r1), (r2, r3), (r4, r5), (r6, r7)):
            a = (a + fb(aes((even | b).to_bytes(16, "little")), "little")) % mod_u
            b = (b + fb(aes((odd | a).to_bytes(16, "little")), "little")) % mod_v
        return b * mod_u + a

    def decrypt(self, x: int) -> int:
        aes = self._aes
        fb = int.from_bytes
        mod_u = self._mod_u
        mod_v = self._mod_v
        b, a = divmod(x, mod_u)
        r0, r1, r2, r3, r4, r5, r6, r7 = self._round
        for even, odd in ((r6, r7), (r4, r5), (r2, r3), (r0, r1)):
            b = (b - fb(aes((odd | a).to_bytes(16, "little")), "little")) % mod_v
            a = (a - fb(aes((even | b).to_bytes(16, "little")), "little")) % mod_u
        return b * mod_u + a


class _FF3Family(_FpeCipher):
    __slots__ = ()
    _reversed_numerals: ClassVar[bool] = True
    _tweak_length: ClassVar[int]

    @classmethod
    def _longest(cls, radix: int) -> int:
        # 2 * floor(log_radix(2**96)), in integers.
        k = 0
        while radix ** (k + 1) <= 1 << 96:
            k += 1
        return 2 * k

    def _block_cipher(self, key: bytes) -> Cipher[modes.ECB]:
        return _aes_ecb(key[::-1])  # CIPH_REVB(K)

    def _check_tweak(self, tweak: bytes) -> None:
        if len(tweak) != self._tweak_length:
            raise FpeError(
                f"{self.algorithm} needs a tweak of exactly {self._tweak_length} bytes "
                f"({8 * self._tweak_length} bits), got {len(tweak)} bytes"
            )

    def _halves(self, tweak: bytes) -> tuple[bytes, bytes]:
        raise NotImplementedError

    def _new_plan(self, n: int, tweak: bytes) -> _Plan:
        left, right = self._halves(tweak)
        return _FF3Plan(self._aes, self._radix, n, left, right)


class FF3(_FF3Family):
    """The original NIST SP 800-38G (2016) FF3 over AES, 64-bit tweak: 8 Feistel rounds.

    Withdrawn by the Rev.1 drafts (see the module caveats); here to reproduce the NIST FF3
    samples. ``tweak`` is exactly 8 bytes: ``T_L`` its first 4, ``T_R`` its last 4.
    """

    __slots__ = ()
    algorithm: ClassVar[str] = "FF3"
    _tweak_length: ClassVar[int] = 8

    def encrypt(self, plaintext: str, tweak: bytes) -> str:
        """The ciphertext of ``plaintext`` under an 8-byte ``tweak``."""
        return self._encrypt(plaintext, tweak)

    def decrypt(self, ciphertext: str, tweak: bytes) -> str:
        """The plaintext of ``ciphertext`` under an 8-byte ``tweak``."""
        return self._decrypt(ciphertext, tweak)

    def _halves(self, tweak: bytes) -> tuple[bytes, bytes]:
        return tweak[:4], tweak[4:]


class FF3_1(_FF3Family):  # noqa: N801 - the standard's name
    """FF3-1 (NIST SP 800-38G Rev.1 draft) over AES: FF3 with a 56-bit tweak.

    ``tweak`` is exactly 7 bytes ``T``: ``T_L = T[0..27] || 0^4`` and
    ``T_R = T[32..55] || T[28..31] || 0^4`` (bits).
    """

    __slots__ = ()
    algorithm: ClassVar[str] = "FF3-1"
    _tweak_length: ClassVar[int] = 7

    def encrypt(self, plaintext: str, tweak: bytes) -> str:
        """The ciphertext of ``plaintext`` under a 7-byte ``tweak``."""
        return self._encrypt(plaintext, tweak)

    def decrypt(self, ciphertext: str, tweak: bytes) -> str:
        """The plaintext of ``ciphertext`` under a 7-byte ``tweak``."""
        return self._decrypt(ciphertext, tweak)

    def _halves(self, tweak: bytes) -> tuple[bytes, bytes]:
        middle = tweak[3]
        return tweak[:3] + bytes((middle & 0xF0,)), tweak[4:7] + bytes(((middle & 0x0F) << 4,))


# -- card-number tokens -------------------------------------------------------------------


class _Walk:
    """One card number's layout: kept digits, middle length, the set ``S`` as a test."""

    __slots__ = ("_doubled_start", "_offset", "_plain_start", "first", "last", "n")

    def __init__(self, first: str, last: str, n: int) -> None:
        self.first = first
        self.last = last
        self.n = n
        # Middle digit j stands at position len(last) + n - 1 - j from the right; odd
        # positions are doubled. The kept digits' share of the sum is fixed.
        doubled_start = (len(last) + n) % 2
        self._doubled_start = doubled_start
        self._plain_start = 1 - doubled_start
        plain_count = len(range(self._plain_start, n, 2))
        fixed = _luhn_sum(first + "0" * n + last)
        self._offset = fixed - 48 * plain_count  # sum() of ASCII digits adds 48 each

    def in_s(self, middle: str) -> bool:
        """Whether ``first + middle + last`` passes the Luhn check."""
        digits = middle.encode("ascii")
        total = (
            self._offset
            + sum(digits[self._plain_start :: 2])
            + sum(digits[self._doubled_start :: 2].translate(_LUHN_DOUBLED))
        )
        return total % 10 == 0


def _luhn_sum(digits: str) -> int:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        total += (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)[value] if position % 2 else value
    return total


def _layout(value: str, what: str, keep_first: int, keep_last: int) -> _Walk:
    """Checks a card number's or token's shape and the kept digits; never echoes ``value``."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, got {type(value).__name__}")
    if not (value.isascii() and value.isdigit()):
        raise FpeError(f"a {what} must be ASCII digits only")
    length = len(value)
    if not _MIN_PAN_LENGTH <= length <= _MAX_PAN_LENGTH:
        raise FpeError(
            f"a {what} has {_MIN_PAN_LENGTH} to {_MAX_PAN_LENGTH} digits, got {length} digits"
        )
    for name, keep in (("keep_first", keep_first), ("keep_last", keep_last)):
        if isinstance(keep, bool) or not isinstance(keep, int):
            raise TypeError(f"{name} must be an int, got {type(keep).__name__}")
        if keep < 0:
            raise FpeError(f"{name} must not be negative, got {keep}")
    n = length - keep_first - keep_last
    if n < _MIN_MIDDLE:
        raise FpeError(
            f"a {length}-digit {what} keeping {keep_first} leading and {keep_last} trailing "
            f"digits leaves {max(n, 0)} digits to encrypt; format-preserving tokens need at "
            f"least {_MIN_MIDDLE} (a domain of {MIN_DOMAIN:,}): keep fewer digits"
        )
    return _Walk(value[:keep_first], value[length - keep_last :], n)


def _check_token_cipher(cipher: FF1 | FF3_1) -> None:
    if not isinstance(cipher, FF1 | FF3_1):
        raise TypeError(
            f"card tokens need an FF1 or FF3_1 cipher, got {type(cipher).__name__} "
            "(FF3 with its 64-bit tweak is withdrawn)"
        )
    if cipher.alphabet != _DIGITS:
        raise FpeError(
            f"card tokens need a radix-10 cipher over the digits 0-9, got radix {cipher.radix}"
        )


def fpe_tokenize(
    pan: str, cipher: FF1 | FF3_1, tweak: bytes, *, keep_first: int = 6, keep_last: int = 4
) -> str:
    """The format-preserving token of the Luhn-valid card number ``pan``.

    Same length, first ``keep_first`` and last ``keep_last`` digits kept, Luhn check failing;
    deterministic for the same cipher key, tweak and kept digits. The middle must be at least
    6 digits. :class:`FpeError` for a card number that is not 12-19 ASCII digits passing the
    Luhn check; the error never holds the card number.
    """
    _check_token_cipher(cipher)
    walk = _layout(pan, "card number", keep_first, keep_last)
    if not luhn_valid(pan):
        raise FpeError(f"a {len(pan)}-digit card number fails the Luhn check")
    n = walk.n
    plan = cipher._plan(n, tweak)
    encrypt = plan.encrypt
    number = cipher._number
    text = cipher._text
    in_s = walk.in_s
    x = number(pan[keep_first : keep_first + n])
    while True:  # ends: the cycle of E through the middle (in S) comes back to S
        x = encrypt(x)
        middle = text(x, n)
        if in_s(middle):
            break
    return walk.first + middle[:-1] + middle[-1].translate(_PLUS_ONE) + walk.last


def fpe_detokenize(
    token: str, cipher: FF1 | FF3_1, tweak: bytes, *, keep_first: int = 6, keep_last: int = 4
) -> str:
    """The card number of a token made by :func:`fpe_tokenize` with the same arguments.

    :class:`FpeError` for a value that is no such token (not 12-19 ASCII digits, or a
    middle that does not decode into a Luhn-valid number); the error never holds the value.
    """
    _check_token_cipher(cipher)
    walk = _layout(token, "token", keep_first, keep_last)
    n = walk.n
    middle = token[keep_first : keep_first + n]
    middle = middle[:-1] + middle[-1].translate(_MINUS_ONE)
    in_s = walk.in_s
    if not in_s(middle):
        raise FpeError(
            f"a {len(token)}-digit value is not a format-preserving token with "
            f"{keep_first} leading and {keep_last} trailing digits kept"
        )
    plan = cipher._plan(n, tweak)
    decrypt = plan.decrypt
    number = cipher._number
    text = cipher._text
    x = number(middle)
    while True:  # ends: middle is in S and D permutes the middles
        x = decrypt(x)
        middle = text(x, n)
        if in_s(middle):
            break
    return walk.first + middle + walk.last
