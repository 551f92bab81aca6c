"""Identifiers of things and people, validated and turned into canonical index keys.

Risk screening, the correlation index, recordations and the console all
compare identifiers that people typed in different ways: ``csqu 305438-3``
and ``CSQU3054383`` are the same container, ``IMO 9074729`` and ``9074729``
the same ship, a UPC-A and its EAN-13 the same trade item. This module gives
every identifier one spelling, the *key*: ``scheme:canonical-value``, such
as ``iso6346:CSQU3054383``. Two identifiers are the same thing exactly when
their keys are equal, so a key can index a hash map or a database column.

Where a scheme has a check digit or a registry format, ``python-stdnum``
validates it (a wrong check digit is an error, not a different identifier):

========== ======================================== =================================
scheme     what                                     key
========== ======================================== =================================
iso6346    container number (ISO 6346)              ``iso6346:CSQU3054383``
imo        ship IMO number                          ``imo:9074729``
gtin       GTIN-8/12/13/14 (EAN/UPC), as GTIN-14    ``gtin:04006381333931``
vat        EU VAT number (with its country prefix)  ``vat:NL004495445B01``
eori       EORI number                              ``eori:DE123456789012345``
========== ======================================== =================================

The rest have no check digit; they are normalised by small rules stated
here so that the same input always gives the same key:

========== ======================================== =================================
plate      vehicle registration plate + country     ``plate:NL:AB123C``
passport   passport number + issuing country        ``passport:DE:C01X00T47``
person     person name + date of birth              ``person:1980-01-31:anna de vries``
company    company (or any party) name              ``company:acme trading``
========== ======================================== =================================

- **Countries** are ISO 3166-1 alpha-2 (from ``pycountry``), plus the
  user-assigned codes that customs use: ``XK`` (Kosovo) and ``XI``
  (Northern Ireland). A passport may name its issuing state in alpha-3
  (as the machine-readable zone does); it is stored as alpha-2.
- **Plates and passport numbers**: upper case, spaces, hyphens, dots and
  slashes removed; what remains must be ASCII letters and digits (plates 1
  to 12, passport numbers 5 to 20 characters).
- **EORI** (``python-stdnum`` has no EORI module): a country code followed by
  1 to 15 letters or digits, upper case, separators removed.
- **Names** (company and person): compatibility-decomposed (NFKD) and
  stripped of combining marks (``é`` -> ``e``), case-folded (``ß`` -> ``ss``);
  dots and apostrophes deleted (``B.V.`` -> ``bv``, ``O'Neil`` -> ``oneil``),
  every other character that is not a letter or digit a space, runs of
  spaces one. Letters of other scripts stay as they are (no transliteration:
  ``Иванов`` and ``Ivanov`` are different keys).
  Company names then lose one trailing legal form from :data:`LEGAL_FORMS`
  (``Acme Trading B.V.`` and ``ACME TRADING`` are the same key); person names
  have their words sorted, so ``DE VRIES, Anna`` and ``Anna de Vries`` match.
  Dates of birth are ISO 8601 calendar dates (``1980-01-31``).

Malformed values raise :class:`intelshare.errors.InvalidArgument` whose
``violations`` name the field (``field`` argument, e.g.
``declaration.containers[2]``) and say what is wrong in plain words.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date
from functools import cache

import pycountry
from stdnum import ean, imo, iso6346
from stdnum.eu import vat
from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidLength, ValidationError

from intelshare.errors import FieldInvalid, InvalidArgument

#: Every scheme, in the order of the module's tables.
SCHEMES: tuple[str, ...] = (
    "iso6346",
    "imo",
    "gtin",
    "vat",
    "eori",
    "plate",
    "passport",
    "person",
    "company",
)

#: Schemes whose key carries a second part (country or date of birth) before the value.
COMPOUND_SCHEMES = frozenset({"plate", "passport", "person"})

#: User-assigned ISO 3166 codes in customs use, accepted beside the standard ones.
EXTRA_COUNTRIES = frozenset({"XK", "XI"})

#: Legal forms dropped from the end of a company name (already normalised: no dots).
LEGAL_FORMS: tuple[tuple[str, ...], ...] = tuple(
    tuple(form.split())
    for form in (
        "bv",
        "nv",
        "vof",
        "cv",
        "gmbh",
        "gmbh co kg",
        "ag",
        "kg",
        "ohg",
        "ug",
        "sa",
        "sas",
        "sarl",
        "srl",
        "spa",
        "sl",
        "ltd",
        "limited",
        "llc",
        "llp",
        "inc",
        "corp",
        "plc",
        "co",
        "oy",
        "oyj",
        "ab",
        "as",
        "aps",
        "sp z oo",
        "sro",
        "kft",
        "doo",
    )
)

_SEPARATORS = re.compile(r"[\s\-./]+")
_ALNUM = re.compile(r"[A-Z0-9]+")
_NAME_DELETE = re.compile("[.'`\u2019]")  # apostrophes: O'Neil, O\u2019Neil
_NAME_SPLIT = re.compile(r"[\W_]+")
_EORI = re.compile(r"([A-Z]{2})([A-Z0-9]{1,15})")
_MAX_NAME = 200


@cache
def countries() -> frozenset[str]:
    """Every country code accepted: ISO 3166-1 alpha-2 and :data:`EXTRA_COUNTRIES`."""
    return frozenset(c.alpha_2 for c in pycountry.countries) | EXTRA_COUNTRIES


@cache
def _alpha3() -> dict[str, str]:
    return {c.alpha_3: c.alpha_2 for c in pycountry.countries}


def _invalid(field: str, problem: str) -> InvalidArgument:
    return FieldInvalid(f"{field}: {problem}", violations={field: problem})


def _text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise _invalid(field, f"must be a string, not {type(value).__name__}")
    if not value.strip():
        raise _invalid(field, "must not be empty")
    return value


def country_code(value: object, field: str = "country", *, alpha3: bool = False) -> str:
    """The ISO 3166-1 alpha-2 code ``value`` names (upper-cased; alpha-3 too if ``alpha3``)."""
    code = _text(value, field).strip().upper()
    if code in countries():
        return code
    if alpha3 and code in _alpha3():
        return _alpha3()[code]
    raise _invalid(field, f"{value!r} is not an ISO 3166-1 alpha-2 country code")


def _stdnum(validate: Callable[[str], str], value: str, field: str, what: str) -> str:
    try:
        result = validate(value)
    except InvalidChecksum:
        raise _invalid(field, f"{value!r} is not a valid {what}: wrong check digit") from None
    except InvalidLength:
        raise _invalid(field, f"{value!r} is not a valid {what}: wrong length") from None
    except InvalidComponent:
        raise _invalid(field, f"{value!r} is not a valid {what}: unknown country") from None
    except ValidationError:
        raise _invalid(field, f"{value!r} is not a valid {what}: wrong format") from None
    return str(result)


def container_number(value: object, field: str = "container") -> str:
    """An ISO 6346 container number, compact and upper case (``CSQU3054383``)."""
    text = _SEPARATORS.sub("", _text(value, field)).upper()
    return _stdnum(iso6346.validate, text, field, "ISO 6346 container number")


def imo_number(value: object, field: str = "imo") -> str:
    """A ship's IMO number, the seven digits (``IMO 9074729`` -> ``9074729``)."""
    return _stdnum(imo.validate, _text(value, field), field, "IMO number")


def gtin(value: object, field: str = "gtin") -> str:
    """A GTIN-8, -12, -13 or -14, as its GTIN-14 (left-padded with zeros)."""
    text = _SEPARATORS.sub("", _text(value, field))
    return _stdnum(ean.validate, text, field, "GTIN").zfill(14)


def vat_number(value: object, field: str = "vat") -> str:
    """An EU VAT number with its country prefix (``NL004495445B01``)."""
    return _stdnum(vat.validate, _text(value, field), field, "EU VAT number").upper()


def eori_number(value: object, field: str = "eori") -> str:
    """An EORI number: country code and 1 to 15 letters or digits."""
    text = _SEPARATORS.sub("", _text(value, field)).upper()
    found = _EORI.fullmatch(text)
    if found is None:
        raise _invalid(
            field, f"{value!r} is not an EORI number (a country code and 1 to 15 letters or digits)"
        )
    country_code(found.group(1), field)
    return text


def _token(value: object, field: str, what: str, low: int, high: int) -> str:
    text = _SEPARATORS.sub("", _text(value, field)).upper()
    if not (_ALNUM.fullmatch(text) and low <= len(text) <= high):
        raise _invalid(field, f"{value!r} is not a {what} ({low} to {high} letters or digits)")
    return text


def plate_number(value: object, field: str = "plate") -> str:
    """A vehicle registration plate: upper case, letters and digits only."""
    return _token(value, field, "registration plate", 1, 12)


def passport_number(value: object, field: str = "passport") -> str:
    """A passport number: upper case, letters and digits only."""
    return _token(value, field, "passport number", 5, 20)


def _name_words(value: object, field: str) -> list[str]:
    text = _text(value, field)
    if len(text) > _MAX_NAME:
        raise _invalid(field, f"is longer than {_MAX_NAME} characters")
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()
    words = _NAME_SPLIT.split(_NAME_DELETE.sub("", plain))
    words = [w for w in words if w]
    if not words:
        raise _invalid(field, f"{value!r} has no letters or digits")
    return words


def company_name(value: object, field: str = "name") -> str:
    """A party's name, normalised (see the module's rules), without a trailing legal form."""
    words = _name_words(value, field)
    for form in sorted(LEGAL_FORMS, key=len, reverse=True):
        if len(words) > len(form) and tuple(words[-len(form) :]) == form:
            words = words[: -len(form)]
            break
    return " ".join(words)


def person_name(value: object, field: str = "name") -> str:
    """A person's name, normalised, its words sorted (order-insensitive)."""
    return " ".join(sorted(_name_words(value, field)))


def birth_date(value: object, field: str = "born") -> str:
    """An ISO 8601 calendar date (a ``date`` or ``YYYY-MM-DD``)."""
    if isinstance(value, date):
        return value.isoformat()
    text = _text(value, field).strip()
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise _invalid(field, f"{value!r} is not a date (YYYY-MM-DD)") from None


@dataclass(frozen=True, slots=True)
class Identifier:
    """A validated identifier: its scheme, canonical value and second part."""

    scheme: str
    value: str
    #: issuing country (plate, passport) or date of birth (person); "" otherwise
    qualifier: str = ""

    @property
    def key(self) -> str:
        """The canonical index key, ``scheme:value`` or ``scheme:qualifier:value``."""
        if self.qualifier:
            return f"{self.scheme}:{self.qualifier}:{self.value}"
        return f"{self.scheme}:{self.value}"


def identifier(
    scheme: object,
    value: object,
    *,
    country: object = None,
    born: object = None,
    field: str = "identifier",
) -> Identifier:
    """Validate and normalise ``value`` under ``scheme``.

    ``country`` is required for ``plate`` and ``passport``, ``born`` for
    ``person``; neither is accepted elsewhere. Errors name
    ``{field}.scheme``, ``{field}.value``, ``{field}.country`` or ``{field}.born``.
    """
    if not isinstance(scheme, str) or scheme not in SCHEMES:
        raise _invalid(f"{field}.scheme", f"{scheme!r} is not one of {', '.join(SCHEMES)}")
    at = f"{field}.value"
    if scheme in ("plate", "passport"):
        if country is None:
            raise _invalid(f"{field}.country", f"a {scheme} needs its country")
        qualifier = country_code(country, f"{field}.country", alpha3=scheme == "passport")
        number = plate_number(value, at) if scheme == "plate" else passport_number(value, at)
        extra = born
        extra_name = "born"
    elif scheme == "person":
        if born is None:
            raise _invalid(f"{field}.born", "a person needs a date of birth")
        return Identifier(scheme, person_name(value, at), birth_date(born, f"{field}.born"))
    else:
        qualifier = ""
        number = _SIMPLE[scheme](value, at)
        extra = country if country is not None else born
        extra_name = "country" if country is not None else "born"
    if extra is not None:
        raise _invalid(f"{field}.{extra_name}", f"a {scheme} identifier takes no {extra_name}")
    return Identifier(scheme, number, qualifier)


_SIMPLE = {
    "iso6346": container_number,
    "imo": imo_number,
    "gtin": gtin,
    "vat": vat_number,
    "eori": eori_number,
    "company": company_name,
}


def key(
    scheme: object,
    value: object,
    *,
    country: object = None,
    born: object = None,
    field: str = "identifier",
) -> str:
    """The canonical index key of (``scheme``, ``value``): ``identifier(...).key``."""
    return identifier(scheme, value, country=country, born=born, field=field).key


def parse_key(
    text: object, field: str = "identifier", *, schemes: Collection[str] | None = None
) -> str:
    """The canonical key of a typed key such as ``iso6346:csqu 305438-3`` or ``plate:nl:ab-12``.

    The text is ``scheme:value``, or ``scheme:qualifier:value`` for the
    compound schemes (``plate:NL:AB123C``, ``passport:DE:C01X00T47``,
    ``person:1980-01-31:Anna de Vries``). ``schemes`` limits the schemes
    accepted. Errors name ``field``.
    """
    raw = _text(text, field)
    scheme, sep, rest = raw.partition(":")
    scheme = scheme.strip().lower()
    allowed = tuple(schemes) if schemes is not None else SCHEMES
    if not sep or scheme not in allowed:
        raise _invalid(
            field, f"{raw!r} is not an identifier key (scheme:value; schemes: {', '.join(allowed)})"
        )
    try:
        if scheme in COMPOUND_SCHEMES:
            qualifier, sep, value = rest.partition(":")
            if not sep:
                second = "date of birth" if scheme == "person" else "country"
                raise _invalid(field, f"{raw!r}: a {scheme} key is {scheme}:{second}:value")
            if scheme == "person":
                return key(scheme, value, born=qualifier, field=field)
            return key(scheme, value, country=qualifier, field=field)
        return key(scheme, rest, field=field)
    except InvalidArgument as exc:
        # the parts of a typed key are not fields of their own: name the key
        problem = "; ".join(exc.violations.values()) or exc.message
        raise _invalid(field, problem) from None
