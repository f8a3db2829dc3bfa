#!/usr/bin/env python3
"""Independent reference implementation of /work/shared/spec/normalization.md (stdlib only).

Written from the spec alone, without reading the Rust parser, for a differential check of the
`facebook-connector-worker parse|payload` commands (see scripts/diffcheck.py, which drives it).

Usage (same stdout contract as the worker's CLI; no stderr summary):
    python3 scripts/reference_normalizer.py parse   --format legacy|dataset [FILE]
    python3 scripts/reference_normalizer.py payload --format legacy|dataset [--batch-size N] [FILE]

Readings of points the spec leaves open are marked "SPEC-SILENT" below; scripts/diffcheck.py
reports differences on those separately from differences on rules the spec states.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import re
import sys
import unicodedata

SCHEMA_ORDER = [
    "DOBD", "DOBM", "DOBY", "COUNTRY", "EMAIL", "FN", "FI", "GEN", "LN", "MADID", "PHONE",
    "CT", "ST", "ZIP",
]
MAX_BATCH = 10_000

US_STATES = {
    "alabama": "al", "alaska": "ak", "arizona": "az", "arkansas": "ar", "california": "ca",
    "colorado": "co", "connecticut": "ct", "delaware": "de", "florida": "fl", "georgia": "ga",
    "hawaii": "hi", "idaho": "id", "illinois": "il", "indiana": "in", "iowa": "ia",
    "kansas": "ks", "kentucky": "ky", "louisiana": "la", "maine": "me", "maryland": "md",
    "massachusetts": "ma", "michigan": "mi", "minnesota": "mn", "mississippi": "ms",
    "missouri": "mo", "montana": "mt", "nebraska": "ne", "nevada": "nv", "new hampshire": "nh",
    "new jersey": "nj", "new mexico": "nm", "new york": "ny", "north carolina": "nc",
    "north dakota": "nd", "ohio": "oh", "oklahoma": "ok", "oregon": "or", "pennsylvania": "pa",
    "rhode island": "ri", "south carolina": "sc", "south dakota": "sd", "tennessee": "tn",
    "texas": "tx", "utah": "ut", "vermont": "vt", "virginia": "va", "washington": "wa",
    "west virginia": "wv", "wisconsin": "wi", "wyoming": "wy",
    # SPEC-SILENT (the worker's reading, kept): DC and the inhabited territories also map
    "district of columbia": "dc", "washington dc": "dc", "american samoa": "as", "guam": "gu",
    "northern mariana islands": "mp", "puerto rico": "pr", "virgin islands": "vi",
    "us virgin islands": "vi", "united states virgin islands": "vi",
    "united states minor outlying islands": "um",
}
# SPEC-SILENT (the worker's reading, kept): full names are matched on their letters only, so
# "New York", "NEW-YORK", "newyork" and "New\u00a0York" all give "ny".
STATES_BY_LETTERS = {k.replace(" ", ""): v for k, v in US_STATES.items()}

HEX64 = re.compile(r"[0-9a-fA-F]{64}")
YEAR4 = re.compile(r"[0-9]{4}")
PLAIN_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
ZIP_PLUS4 = re.compile(r"([0-9]{5})-?[0-9]{4}")


def sha(s: str) -> str:
    return hashlib.sha256(s.encode("utf-8")).hexdigest()


def current_year() -> int:
    return dt.datetime.now(dt.timezone.utc).year


def get_obj(d, key):
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, dict) else None


def get_str(d, key):
    """The string at d[key]; None when absent or of another JSON type."""
    if not isinstance(d, dict):
        return None
    v = d.get(key)
    return v if isinstance(v, str) else None


def str_or_value(d, key):
    """A string, or an object whose `value` is a string."""
    if not isinstance(d, dict):
        return None
    v = d.get(key)
    if isinstance(v, str):
        return v
    if isinstance(v, dict) and isinstance(v.get("value"), str):
        return v["value"]
    return None


def prehashed(s):
    if s is None:
        return None
    s = s.strip()  # SPEC-SILENT (the worker's reading, kept): pre-hashed values are trimmed
    if not HEX64.fullmatch(s):
        return None
    return s.lower()


def raw_email(s):
    if s is None:
        return None
    e = s.strip().lower()
    if e.count("@") != 1:
        return None
    local, domain = e.split("@")
    if not local or not domain:
        return None
    return sha(e)


def raw_phone(s):
    if s is None:
        return None
    digits = "".join(c for c in s if "0" <= c <= "9").lstrip("0")  # SPEC-SILENT: ASCII digits
    if not 7 <= len(digits) <= 15:
        return None
    return sha(digits)


def is_letter(c: str) -> bool:
    # SPEC-SILENT: "letter" read as Unicode general category L* (str.isalpha)
    return c.isalpha()


def name(s):
    if s is None:
        return None
    n = unicodedata.normalize("NFC", s).lower()
    n = "".join(c for c in n if is_letter(c))
    return n or None


def id_type(t):
    """SPEC-SILENT (the worker's reading, kept): id types are trimmed and ASCII case-insensitive."""
    return t.strip().lower() if isinstance(t, str) else t


def unique_id(data):
    """(type, value) of `unique_id`; type None when absent or null; None when unusable."""
    u = get_obj(data, "unique_id")
    if u is None:
        return None
    t = u.get("type")
    if t is not None and not isinstance(t, str):
        return None
    v = u.get("value")
    return (id_type(t), v if isinstance(v, str) else None)


def email(data):
    uid = unique_id(data)
    if uid and uid[0] == "sha256_email":
        r = prehashed(uid[1])
        if r:
            return r
    he = get_obj(data, "hashed_email")
    if he is not None and id_type(he.get("type")) == "sha256_email":
        r = prehashed(get_str(he, "value"))
        if r:
            return r
    r = prehashed(get_str(get_obj(data, "sha256_hashed_email"), "value"))
    if r:
        return r
    for key in ("normalized_email", "raw_email"):
        r = raw_email(str_or_value(data, key))
        if r:
            return r
    return None


def phone(data):
    r = prehashed(get_str(get_obj(data, "sha256_hashed_phone_number"), "value"))
    if r:
        return r
    for key in ("e164_phone_number", "telephone_number"):
        r = raw_phone(str_or_value(data, key))
        if r:
            return r
    return None


def madid_norm(s):
    if s is None:
        return None
    m = s.strip().lower()
    return m or None


def madid(data):
    uid = unique_id(data)
    if uid and uid[0] in ("adid", "idfa", None):
        r = madid_norm(uid[1])
        if r:
            return r
    for key in ("mobile_id_unique_identifier", "android_advertising_id", "apple_idfa"):
        r = madid_norm(get_str(get_obj(data, key), "value"))
        if r:
            return r
    return None


def gender(data):
    g = get_str(get_obj(data, "hl7_gender"), "gender")
    if g is None:
        return None
    g = g.strip().lower()
    if g in ("male", "m"):
        return "m"
    if g in ("female", "f"):
        return "f"
    return None


def valid_year(y: int) -> bool:
    return 1900 <= y <= current_year()


def birthdate(s):
    if s is None:
        return None
    s = s.strip()  # SPEC-SILENT (the worker's reading, kept): trimmed; RFC 3339's space separator
    m = PLAIN_DATE.fullmatch(s)
    if m:
        try:
            d = dt.date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            return None
        return d if valid_year(d.year) else None
    m = RFC3339.fullmatch(s)
    if not m:
        return None
    y, mo, d, h, mi, sec = (int(m[i]) for i in range(1, 7))
    if h > 23 or mi > 59 or sec > 60:
        return None
    leap = sec == 60
    sec = min(sec, 59)
    off = m[8]
    if off in ("Z", "z"):
        offset = dt.timedelta(0)
    else:
        oh, om = int(off[1:3]), int(off[4:6])
        if oh > 23 or om > 59:
            return None
        offset = dt.timedelta(hours=oh, minutes=om) * (1 if off[0] == "+" else -1)
    try:
        local = dt.datetime(y, mo, d, h, mi, sec)
        utc = local - offset
    except (ValueError, OverflowError):
        return None
    if leap:
        # SPEC-SILENT (the worker's reading, kept): a leap second only at 23:59:60 UTC on a
        # month's last day
        if (utc.hour, utc.minute) != (23, 59) or (utc + dt.timedelta(days=1)).day != 1:
            return None
    return utc.date() if valid_year(utc.year) else None


def birth_year(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        y = v
    elif isinstance(v, str) and YEAR4.fullmatch(v.strip()):  # SPEC-SILENT: trimmed (worker)
        y = int(v)
    else:
        return None  # SPEC-SILENT: floats such as 1980.0 are not integers
    return y if valid_year(y) else None


def dob(data, m):
    d = birthdate(get_str(data, "birthdate"))
    if d is not None:
        m["DOBY"] = sha("%04d" % d.year)
        m["DOBM"] = sha("%02d" % d.month)
        m["DOBD"] = sha("%02d" % d.day)
        return
    y = birth_year(data.get("birth_year"))
    if y is not None:
        m["DOBY"] = sha("%04d" % y)


def country(data):
    c = get_str(data, "iso_3166_1_country")
    if c is None:
        return None
    c = c.strip().lower()
    if len(c) == 2 and all("a" <= ch <= "z" for ch in c):
        return sha(c)
    return None


def letters_lower(s):
    # SPEC-SILENT (the worker's reading, kept): NFC for CT/ST too, like names, so that composed
    # and decomposed spellings of a city agree
    return "".join(c for c in unicodedata.normalize("NFC", s).lower() if is_letter(c))


def city(addr):
    s = get_str(addr, "address_locality")
    if s is None:
        return None
    c = letters_lower(s)
    return sha(c) if c else None


def state(addr):
    s = get_str(addr, "address_region")
    if s is None:
        return None
    st = letters_lower(s)
    st = STATES_BY_LETTERS.get(st, st)
    return sha(st) if st else None


def zip_code(addr):
    s = get_str(addr, "postal_code")
    if s is None:
        return None
    # SPEC-SILENT (the worker's reading, kept): every whitespace character counts as a space
    z = "".join(c for c in s.lower() if not c.isspace())
    m = ZIP_PLUS4.fullmatch(z)
    if m:
        z = m[1]
    return sha(z) if z else None


def member(data: dict) -> dict:
    m: dict[str, str] = {}
    dob(data, m)
    for key, fn in (("COUNTRY", country), ("EMAIL", email)):
        v = fn(data)
        if v:
            m[key] = v
    pn = get_obj(data, "person_name")
    fn_ = name(get_str(pn, "given_name"))
    if fn_:
        m["FN"] = sha(fn_)
        m["FI"] = sha(fn_[0])
    g = gender(data)
    if g:
        m["GEN"] = sha(g)
    ln = name(get_str(pn, "family_name"))
    if ln:
        m["LN"] = sha(ln)
    for key, fn in (("MADID", madid), ("PHONE", phone)):
        v = fn(data)
        if v:
            m[key] = v
    addr = get_obj(data, "postal_address")
    for key, fn in (("CT", city), ("ST", state), ("ZIP", zip_code)):
        v = fn(addr)
        if v:
            m[key] = v
    return {k: m[k] for k in SCHEMA_ORDER if k in m}


def matchable(m: dict) -> bool:
    return any(k in m for k in ("EMAIL", "PHONE", "MADID")) or ("FN" in m and "LN" in m)


def records(lines, fmt):
    """One item per record line: the member dict, or None for a line that is not a JSON object."""
    for raw in lines:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield None  # SPEC-SILENT: a line that is not UTF-8 is not a JSON object
            continue
        if line.strip(" \t\r") == "":
            continue  # SPEC-SILENT: blank lines are not records
        try:
            v = json.loads(line, parse_constant=reject_constant)
            check_no_surrogates(v)
        except ValueError:
            yield None
            continue
        if not isinstance(v, dict):
            yield None
            continue
        if fmt == "legacy":
            v = v.get("data")
            if not isinstance(v, dict):
                v = {}  # SPEC-SILENT: an object without a `data` object maps to nothing
        yield member(v)


def reject_constant(name):
    raise ValueError("not json: " + name)


def check_no_surrogates(v):
    """SPEC-SILENT: a lone surrogate escape (\\ud800) is read as invalid JSON."""
    if isinstance(v, str):
        if any("\ud800" <= c <= "\udfff" for c in v):
            raise ValueError("lone surrogate")
    elif isinstance(v, dict):
        for k, x in v.items():
            check_no_surrogates(k)
            check_no_surrogates(x)
    elif isinstance(v, list):
        for x in v:
            check_no_surrogates(x)


def dumps(v) -> str:
    return json.dumps(v, ensure_ascii=False, separators=(",", ":"))


def payloads(members, batch_size):
    batch = []
    for m in members:
        if m is None or not matchable(m):
            continue
        batch.append(m)
        if len(batch) == batch_size:
            yield payload(batch)
            batch = []
    if batch:
        yield payload(batch)


def payload(batch):
    schema = [k for k in SCHEMA_ORDER if any(k in m for m in batch)]
    return {"schema": schema, "data": [[m.get(k, "") for k in schema] for m in batch]}


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("command", choices=["parse", "payload"])
    p.add_argument("--format", required=True, choices=["legacy", "dataset"])
    p.add_argument("--batch-size", type=int, default=MAX_BATCH)
    p.add_argument("file", nargs="?")
    a = p.parse_intermixed_args(argv)
    if not 1 <= a.batch_size <= MAX_BATCH:
        p.error("batch size must be within 1..=10000")
    f = open(a.file, "rb") if a.file else sys.stdin.buffer
    lines = (line.rstrip(b"\n").rstrip(b"\r") for line in f)
    out = sys.stdout
    if a.command == "parse":
        for m in records(lines, a.format):
            out.write(dumps(m) + "\n")
    else:
        for pl in payloads(records(lines, a.format), a.batch_size):
            out.write(dumps(pl) + "\n")


if __name__ == "__main__":
    main()
