#!/usr/bin/env python3
"""Adversarial record sets for the differential check of the record parser (stdlib only).

Usage:
    python3 scripts/gen_cases.py [--seed N] [--random N] OUT_DIR
writes OUT_DIR/dataset.jsonl, OUT_DIR/legacy.jsonl (the same records in both shapes, plus lines
that are not objects) and OUT_DIR/labels.txt (one label per line of both files, for reports).
Cases cover every row and note of normalization.md, precedence fall-through, wrong JSON types for
every field, unicode, whitespace, dates, ids, pre-hashed values, phone limits, the original
connector's test records, and seeded random records.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import original_cases  # noqa: E402

H64 = "a" * 32 + "0123456789abcdef" * 2
H64_UP = "ABCDEF0123456789" * 4
WRONG_TYPES = [5, 1980, 1.5, -0.0, True, False, None, [], ["x"], {}, {"value": "x"}, ""]
THIS_YEAR = dt.datetime.now(dt.timezone.utc).year

CASES: list[tuple[str, object]] = []  # (label, dataset-form object, or ("RAW", line))


def case(label, data):
    CASES.append((label, data))


def raw(label, line):
    CASES.append((label, ("RAW", line)))


def with_anchor(d):
    """Adds FN+LN so unmatchable-only fields still reach the payload."""
    d = dict(d)
    d.setdefault("person_name", {"given_name": "Ann", "family_name": "Lee"})
    return d


def build():
    # --- spec examples
    case("ex-name", {"person_name": {"given_name": "John", "family_name": "Smith"}})
    case("ex-birthdate", {"birthdate": "1975-07-04T00:00:00Z"})
    case("ex-raw-email", {"raw_email": "  Jane@Example.ORG "})
    case("ex-phone", {"telephone_number": "+1 (415) 555-0123"})
    case("ex-idfa", {"apple_idfa": {"value": "AB12CD34-0000-4000-8000-00000000AAAA"}})
    case("ex-gen-country", {"hl7_gender": {"gender": "Female"}, "iso_3166_1_country": "FR"})
    case("ex-fb-vector", {"raw_email": "mary@example.com"})

    # --- EMAIL precedence and fall-through
    case("em-uid-sha256", {"unique_id": {"type": "sha256_email", "value": H64_UP},
                           "raw_email": "a@b.c"})
    case("em-uid-invalid-falls", {"unique_id": {"type": "sha256_email", "value": "zz"},
                                  "hashed_email": {"type": "sha256_email", "value": H64}})
    case("em-hashed-email", {"hashed_email": {"type": "sha256_email", "value": H64},
                             "sha256_hashed_email": {"value": "b" * 64}})
    case("em-hashed-email-other-type", {"hashed_email": {"type": "md5_email", "value": H64},
                                        "sha256_hashed_email": {"value": "b" * 64}})
    case("em-hashed-email-no-type", {"hashed_email": {"value": H64}})
    case("em-sha256-hashed", {"sha256_hashed_email": {"value": "C" * 64}, "raw_email": "x@y.z"})
    case("em-sha256-hashed-bad-falls", {"sha256_hashed_email": {"value": "c" * 63},
                                        "normalized_email": "n@e.com", "raw_email": "r@e.com"})
    case("em-sha256-hashed-nonhex", {"sha256_hashed_email": {"value": "g" * 64}, "raw_email": "r@e.com"})
    case("em-sha256-hashed-65", {"sha256_hashed_email": {"value": "a" * 65}})
    case("em-sha256-hashed-space", {"sha256_hashed_email": {"value": " " + "a" * 64 + " "}})
    case("em-sha256-hashed-string", {"sha256_hashed_email": "a" * 64})
    case("em-normalized-first", {"normalized_email": "N@E.com", "raw_email": "r@e.com"})
    case("em-normalized-obj", {"normalized_email": {"value": "N@E.com"}})
    case("em-normalized-bad-falls", {"normalized_email": "nope", "raw_email": "r@e.com"})
    case("em-raw-obj", {"raw_email": {"value": " R@E.COM"}})
    case("em-raw-obj-wrong", {"raw_email": {"value": 5}})
    for i, e in enumerate(["noat", "a@@b", "a@b@c", "@b", "a@", "@", " @ ", "a @b", "a@ b",
                           "Ünï@Exämple.COM", "a+tag@x.io", "\ta@b\n", "a\u00a0@b", "\u00a0a@b\u00a0",
                           "a@b\u2003", "ǅx@y", "İ@x.tr", "ΣΑΣ@x.gr", "", "   "]):
        case(f"em-raw-{i}", {"raw_email": e})
    case("em-uid-sha1", {"unique_id": {"type": "sha1_email", "value": "a" * 40}})
    case("em-uid-sha1-64", {"unique_id": {"type": "sha1_email", "value": H64}})
    case("em-uid-ttd", {"unique_id": {"type": "ttd_id", "value": "TTD-1"}})
    case("em-uid-SHA256", {"unique_id": {"type": "SHA256_EMAIL", "value": H64}})

    # --- MADID
    for t in ["adid", "idfa", "IDFA", "Adid", " adid", "sha1_email", "ttd_id", "sha256_email"]:
        case(f"madid-uid-type-{t}", {"unique_id": {"type": t, "value": " AbC-12 "}})
    case("madid-uid-type-absent", {"unique_id": {"value": "  X-Y-Z "}})
    case("madid-uid-type-null", {"unique_id": {"type": None, "value": "X-Y-Z"}})
    case("madid-uid-type-number", {"unique_id": {"type": 5, "value": "X-Y-Z"}})
    case("madid-uid-value-number", {"unique_id": {"type": "adid", "value": 5},
                                    "apple_idfa": {"value": "fallback"}})
    case("madid-uid-empty-falls", {"unique_id": {"type": "adid", "value": "   "},
                                   "mobile_id_unique_identifier": {"value": "MOB"}})
    case("madid-mobile-over-android", {"mobile_id_unique_identifier": {"value": "MOB"},
                                       "android_advertising_id": {"value": "AND"},
                                       "apple_idfa": {"value": "APL"}})
    case("madid-android-over-apple", {"android_advertising_id": {"value": "AND"},
                                      "apple_idfa": {"value": "APL"}})
    case("madid-mobile-string", {"mobile_id_unique_identifier": "MOB", "apple_idfa": {"value": "APL"}})
    case("madid-unicode", {"apple_idfa": {"value": "ÄÖ-Ü_id/\"x\\y\u0001\u2028"}})
    case("madid-sha256-uid-and-madid", {"unique_id": {"type": "sha256_email", "value": H64},
                                        "apple_idfa": {"value": "APL"}})
    case("madid-uid-array", {"unique_id": [{"type": "adid", "value": "x"}]})

    # --- PHONE
    case("ph-prehashed", {"sha256_hashed_phone_number": {"value": H64_UP}, "telephone_number": "4155550123"})
    case("ph-prehashed-bad-falls", {"sha256_hashed_phone_number": {"value": "x"},
                                    "e164_phone_number": "+14155550123"})
    case("ph-e164-over-tel", {"e164_phone_number": "+33 1 23 45 67 89", "telephone_number": "555"})
    case("ph-e164-obj", {"e164_phone_number": {"value": "+14155550123"}})
    case("ph-tel-obj", {"telephone_number": {"value": "(415) 555-0123"}})
    case("ph-e164-bad-falls", {"e164_phone_number": "12", "telephone_number": "4155550123"})
    for n in [5, 6, 7, 8, 14, 15, 16, 20]:
        case(f"ph-digits-{n}", {"telephone_number": "1234567890123456789012"[:n]})
    case("ph-leading-zeros-6", {"telephone_number": "000123456"})
    case("ph-leading-zeros-7", {"telephone_number": "0001234567"})
    case("ph-leading-zeros-15", {"telephone_number": "00" + "1" * 15})
    case("ph-leading-zeros-16", {"telephone_number": "0" + "1" * 16})
    case("ph-all-zeros", {"telephone_number": "0000000000"})
    case("ph-inner-zeros", {"telephone_number": "+44 (0)20 7946 0000"})
    case("ph-arabic-digits", {"telephone_number": "\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668"})
    case("ph-fullwidth-digits", {"telephone_number": "１２３４５６７８９"})
    case("ph-letters", {"telephone_number": "1-800-FLOWERS-1"})
    case("ph-number", {"telephone_number": 4155550123})

    # --- names
    names = ["John", "  Mary-Jane ", "O'Brien", "Zoë", "Zoe\u0308", "q\u0301x", "José",
             "Jose\u0301", "Ωμέγα", "ΣΟΦΟΣ", "Дмитрий", "王小明", "山田", "😀Bob😀", "R2D2", "123",
             "Ⅻ", "ǅemal", "İsmail", "Straße", "ﬁona", "अमित", "محمد", "\u200bAl\u200dex",
             "Ａｂｃ", "ʼOkina", "Łukasz", "Æsa", "ŉ", "", "   ", "-", "ß"]
    for i, n in enumerate(names):
        case(f"name-fn-{i}", {"person_name": {"given_name": n, "family_name": "Smith"}})
        case(f"name-ln-{i}", {"person_name": {"given_name": "Al", "family_name": n}})
    case("name-full-only", {"person_name": {"full_name": "John Smith"}})
    case("name-full-and-given", {"person_name": {"full_name": "John Smith", "given_name": "Jo"}})
    case("name-fn-only", {"person_name": {"given_name": "John"}})
    case("name-ln-only", {"person_name": {"family_name": "Smith"}})
    case("name-fn-empty-after", {"person_name": {"given_name": "123", "family_name": "Smith"}})
    case("name-person-string", {"person_name": "John Smith"})
    for i, w in enumerate(WRONG_TYPES):
        case(f"name-wrong-given-{i}", {"person_name": {"given_name": w, "family_name": "Smith"}})
        case(f"name-wrong-family-{i}", {"person_name": {"given_name": "Ann", "family_name": w},
                                        "raw_email": "a@b.c"})
        case(f"name-wrong-pn-{i}", {"person_name": w, "raw_email": "a@b.c"})

    # --- gender
    for i, g in enumerate(["male", "Male", " MALE ", "m", "M", "female", "F", " f\t", "fem",
                           "unknown", "", "u", "mf", "ｍ", "\u00a0m\u00a0", "K"]):
        case(f"gen-{i}", with_anchor({"hl7_gender": {"gender": g}}))
    case("gen-string", with_anchor({"hl7_gender": "male"}))
    case("gen-number", with_anchor({"hl7_gender": {"gender": 1}}))

    # --- dates
    dates = ["1975-07-04T00:00:00Z", "1975-07-04", "1975-07-04T23:30:00-01:00",
             "1975-07-04T00:30:00+01:00", "1975-12-31T23:00:00-02:00", "2000-01-01T00:00:00+14:00",
             "1900-01-01T00:30:00+01:00", "1899-12-31T23:30:00-01:00", "1899-12-31", "1900-01-01",
             f"{THIS_YEAR}-01-01", f"{THIS_YEAR}-12-31", f"{THIS_YEAR + 1}-01-01",
             f"{THIS_YEAR}-12-31T23:30:00-01:00", f"{THIS_YEAR + 1}-01-01T00:30:00+01:00",
             "2023-02-30", "2023-02-29", "2024-02-29", "2023-13-01", "2023-00-10", "2023-01-00",
             "2023-04-31", "1975-7-4", "19750704", "1975/07/04", " 1975-07-04", "1975-07-04 ",
             "1975-07-04T00:00:00", "1975-07-04T00:00Z", "1975-07-04t10:00:00z",
             "1975-07-04 10:00:00Z", "1975-07-04T10:00:00.123456789Z", "1975-07-04T10:00:00.Z",
             "1975-07-04T24:00:00Z", "1975-07-04T23:59:60Z", "1975-07-04T10:00:00+24:00",
             "1975-07-04T10:00:00+0100", "1975-07-04T10:00:00+01", "1975-07-04T10:00:00-00:00",
             "1975-07-04T10:60:00Z", "0000-01-01", "9999-12-31T23:00:00-02:00", "",
             "July 4, 1975", "1975-07-04T00:00:00.000+05:30", "1975-07-03T20:00:00-05:30",
             "1975-07-04T00:00:00Z[UTC]", "+1975-07-04", "１９７５-07-04"]
    for i, d in enumerate(dates):
        case(f"dob-{i}", with_anchor({"birthdate": d}))
        case(f"dob-fall-{i}", with_anchor({"birthdate": d, "birth_year": 1980}))
    years = [1980, "1980", 1980.0, "1980.0", 1.98e3, " 1980", "1980 ", "80", "01980", 1899, 1900,
             THIS_YEAR, THIS_YEAR + 1, "1899", "1900", str(THIS_YEAR), str(THIS_YEAR + 1), -1980,
             0, True, None, [1980], {"value": 1980}, "abcd", "١٩٨٠", 10 ** 20, "0000"]
    for i, y in enumerate(years):
        case(f"by-{i}", with_anchor({"birth_year": y}))
    for i, w in enumerate(WRONG_TYPES):
        case(f"dob-wrong-{i}", with_anchor({"birthdate": w, "birth_year": "1981"}))

    # --- country
    for i, c in enumerate(["US", " us ", "usa", "u", "U1", "ÜS", "ｕｓ", "", "u s", "\tFr\n", "GB"]):
        case(f"country-{i}", with_anchor({"iso_3166_1_country": c}))

    # --- postal address
    cities = ["San Francisco", "  St. Louis ", "Winston-Salem", "São Paulo", "Sa\u0303o Paulo",
              "München", "Zürich 8", "Москва", "東京", "", "123", "Coeur d'Alene", "İzmir"]
    for i, c in enumerate(cities):
        case(f"ct-{i}", with_anchor({"postal_address": {"address_locality": c}}))
    regions = ["California", "california", "CALIFORNIA", "cAlIfOrNiA", " New York ", "new york",
               "NEW  YORK", "New-York", "NewYork", "north carolina", "West Virginia", "Virginia",
               "District of Columbia", "Puerto Rico", "CA", "ca", "N.Y.", "Ontario", "Île-de-France",
               "Bayern", "", "12", "Washington", "washington d.c.", "Rhode Island", "Texas\t",
               "New\u00a0York", "Ｔｅｘａｓ", "Georgia"]
    for i, r in enumerate(regions):
        case(f"st-{i}", with_anchor({"postal_address": {"address_region": r}}))
    zips = ["94103", "94103-1234", "941031234", " 94103 - 1234 ", "94103 1234", "9410-31234",
            "94103-123", "9410312345", "SW1A 1AA", "sw1a1aa", "K1A 0B6", "", " ", "94103\t1234",
            "94103\u00a01234", "941O3", "12345-67890", "１２３４５", "01234", "00000-0000"]
    for i, z in enumerate(zips):
        case(f"zip-{i}", with_anchor({"postal_address": {"postal_code": z}}))
    for i, w in enumerate(WRONG_TYPES):
        case(f"addr-wrong-{i}", with_anchor({"postal_address": {"address_locality": w,
                                                                 "address_region": w,
                                                                 "postal_code": w}}))
        case(f"addr-wrong-obj-{i}", with_anchor({"postal_address": w}))
    case("addr-number-zip", with_anchor({"postal_address": {"postal_code": 94103}}))

    # --- wrong types for every top-level field (each alone, and beside an anchor)
    fields = ["unique_id", "hashed_email", "sha256_hashed_email", "normalized_email", "raw_email",
              "sha256_hashed_phone_number", "e164_phone_number", "telephone_number",
              "mobile_id_unique_identifier", "android_advertising_id", "apple_idfa", "person_name",
              "hl7_gender", "birthdate", "birth_year", "iso_3166_1_country", "postal_address"]
    for f in fields:
        for i, w in enumerate(WRONG_TYPES):
            case(f"wrong-{f}-{i}", {f: w})
            case(f"wrong-{f}-{i}-anchored", with_anchor({f: w}))
        case(f"wrong-{f}-value-num", {f: {"value": 123, "type": "adid"}})

    # --- matchability
    case("unmatch-empty", {})
    case("unmatch-only-demo", {"hl7_gender": {"gender": "m"}, "birthdate": "1975-07-04",
                               "iso_3166_1_country": "US",
                               "postal_address": {"address_locality": "X", "address_region": "CA",
                                                  "postal_code": "94103"}})
    case("unmatch-ignored-attrs", {"foo": "bar", "data": {"raw_email": "a@b.c"}})
    case("match-all", {"unique_id": {"type": "adid", "value": "M-1"}, "raw_email": "a@b.c",
                       "telephone_number": "4155550123",
                       "person_name": {"given_name": "A", "family_name": "B"},
                       "hl7_gender": {"gender": "f"}, "birthdate": "1990-02-03",
                       "iso_3166_1_country": "us",
                       "postal_address": {"address_locality": "Austin", "address_region": "Texas",
                                          "postal_code": "78701-1234"}})
    case("dup-keys", ("RAW_DUP", '{"raw_email":"first@x.y","raw_email":"second@x.y"}'))

    # --- capital sigma (final form at a word's end), leap seconds, id type spellings
    for i, (key, v) in enumerate([
            ("raw_email", "ΟΔΥΣΣΕΑΣ@X.GR"), ("normalized_email", {"value": "ΣΑΣ@x.gr"}),
            ("apple_idfa", {"value": "ΑΣ-1"}),
            ("person_name", {"given_name": "ΟΔΥΣΣΕΑΣ ΚΑΙ", "family_name": "ΠΑΠΑΣ."}),
            ("person_name", {"given_name": "Σ", "family_name": "ΣΣ"}),
            ("postal_address", {"address_locality": "ΛΕΜΕΣΟΣ", "address_region": "ΑΤΤΙΚΗΣ",
                                "postal_code": "ΑΣ 12"}),
            ("postal_address", {"postal_code": "ΣΑΣ1"}),
            ("birthdate", "1975-06-30T23:59:60Z"), ("birthdate", "1975-12-31T23:59:60Z"),
            ("birthdate", "1975-06-30T22:59:60-01:00"), ("birthdate", "1975-06-30T23:59:60+01:00"),
            ("unique_id", {"type": " SHA256_email ", "value": H64}),
            ("hashed_email", {"type": "Sha256_Email", "value": H64}),
            ("unique_id", {"type": "", "value": "EMPTY-TYPE"})]):
        case(f"extra-{i}", with_anchor({key: v}))

    # --- the Scala original's AudienceParserSpec / FacebookClientSpec records
    for label, d in ORIGINAL_CASES:
        case(label, d)

    # --- non-object lines (identical in both shapes)
    for i, line in enumerate(["[1,2]", "[]", '"str"', "42", "3.5", "true", "null", "{", "{]",
                              '{"a":1}}', "nul", "{'a':1}", '{"a":NaN}', '{"a":Infinity}',
                              '{"data":"\\ud800"}', '{"raw_email":"\\udc00@x.y"}', "\ufeff{}",
                              '  {"data":{}}  ', "\u00a0{}", "{} {}", "//c", '{"a":1,}']):
        raw(f"raw-{i}", line)


# Records of the original connector's tests (AudienceParserSpec.scala, FacebookClientSpec.scala),
# rewritten in dataset form: the facts (inputs and expected member fields), not the code.
ORIGINAL_CASES: list[tuple[str, dict]] = [(label, d) for label, d, _ in original_cases.PARSER_CASES]


def random_records(n, seed):
    rng = random.Random(seed)
    alpha = ["a", "Z", "é", "ß", "Ω", "д", "王", "😀", " ", "-", "'", "1", ".", "@", "\u0301", "\t",
             "İ", "ǅ", "\"", "\\", "\u00a0", "Σ", "ΣΑ", "\u0303"]

    def s(k=8):
        return "".join(rng.choice(alpha) for _ in range(rng.randint(0, k)))

    def v(gen):
        r = rng.random()
        if r < 0.08:
            return rng.choice(WRONG_TYPES)
        return gen()

    gens = {
        "unique_id": lambda: {"type": rng.choice(["adid", "idfa", "sha256_email", "ttd_id", None]),
                              "value": rng.choice([H64, s(), "AB-cd-" + s(4)])},
        "hashed_email": lambda: {"type": rng.choice(["sha256_email", "x"]), "value": rng.choice([H64, s()])},
        "sha256_hashed_email": lambda: {"value": rng.choice([H64_UP, s()])},
        "normalized_email": lambda: rng.choice([s() + "@" + s(), {"value": s() + "@x"}]),
        "raw_email": lambda: rng.choice([s() + "@" + s(), " A@B.C ", {"value": s() + "@" + s()}]),
        "sha256_hashed_phone_number": lambda: {"value": rng.choice([H64, s()])},
        "e164_phone_number": lambda: "+" + "".join(rng.choice("0123456789 -()") for _ in range(rng.randint(0, 20))),
        "telephone_number": lambda: rng.choice(["".join(rng.choice("0123456789 -()") for _ in range(rng.randint(0, 20))),
                                                {"value": s()}]),
        "mobile_id_unique_identifier": lambda: {"value": s()},
        "android_advertising_id": lambda: {"value": s()},
        "apple_idfa": lambda: {"value": s()},
        "person_name": lambda: {"given_name": v(s), "family_name": v(s), "full_name": s()},
        "hl7_gender": lambda: {"gender": rng.choice(["m", "F", " male", "x", s(3)])},
        "birthdate": lambda: rng.choice([
            "%04d-%02d-%02d" % (rng.randint(1890, THIS_YEAR + 2), rng.randint(0, 13), rng.randint(0, 32)),
            "%04d-%02d-%02dT%02d:%02d:%02d%s" % (rng.randint(1890, THIS_YEAR + 2), rng.randint(1, 12),
                                                rng.randint(1, 31), rng.randint(0, 23), rng.randint(0, 59),
                                                rng.randint(0, 59),
                                                rng.choice(["Z", "+05:30", "-11:00", "+14:00", "-00:00"]))]),
        "birth_year": lambda: rng.choice([rng.randint(1890, THIS_YEAR + 2), str(rng.randint(1890, THIS_YEAR + 2))]),
        "iso_3166_1_country": lambda: rng.choice(["US", " fr ", "usa", s(2)]),
        "postal_address": lambda: {"address_locality": v(s), "address_region": v(lambda: rng.choice(
            ["California", "new york", "TX", s()])), "postal_code": v(lambda: rng.choice(
                ["94103-1234", "941031234", s(6), "SW1A 1AA"]))},
        "ignored": lambda: s(),
    }
    out = []
    keys = list(gens)
    for i in range(n):
        d = {}
        for k in rng.sample(keys, rng.randint(0, 12)):
            d[k] = v(gens[k])
        out.append((f"random-{i}", d))
    return out


def lines_for(label, d, fmt):
    if isinstance(d, tuple):
        kind, line = d
        if kind == "RAW":
            return line
        # RAW_DUP: an object line with duplicate keys, wrapped for legacy
        return line if fmt == "dataset" else '{"data":' + line + "}"
    obj = d if fmt == "dataset" else {"data": d}
    return json.dumps(obj, ensure_ascii=False)


LEGACY_ONLY = [
    ("legacy-no-data", '{"raw_email":"a@b.c"}'),
    ("legacy-data-null", '{"data":null}'),
    ("legacy-data-string", '{"data":"x"}'),
    ("legacy-data-array", '{"data":[{"raw_email":"a@b.c"}]}'),
    ("legacy-data-and-other", '{"data":{"raw_email":"a@b.c"},"raw_email":"z@z.z","id":7}'),
]


def write(out_dir, n_random, seed):
    CASES.clear()
    build()
    CASES.extend(random_records(n_random, seed))
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "labels.txt"), "w", encoding="utf-8") as lab, \
            open(os.path.join(out_dir, "dataset.jsonl"), "w", encoding="utf-8") as ds, \
            open(os.path.join(out_dir, "legacy.jsonl"), "w", encoding="utf-8") as lg:
        for label, d in CASES:
            lab.write(label + "\n")
            ds.write(lines_for(label, d, "dataset") + "\n")
            lg.write(lines_for(label, d, "legacy") + "\n")
        for label, line in LEGACY_ONLY:  # in dataset shape these are ordinary (mostly) objects
            lab.write(label + "\n")
            ds.write(line + "\n")
            lg.write(line + "\n")
    # blank lines and a line that is not UTF-8 at the very end (not records / rejected)
    for name in ("dataset.jsonl", "legacy.jsonl"):
        with open(os.path.join(out_dir, name), "ab") as f:
            f.write(b"\n   \n\xff\xfe{}\n")
    with open(os.path.join(out_dir, "labels.txt"), "a", encoding="utf-8") as lab:
        lab.write("raw-not-utf8\n")
    return len(CASES) + len(LEGACY_ONLY) + 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--seed", type=int, default=20261126)
    p.add_argument("--random", type=int, default=3000)
    p.add_argument("out_dir")
    a = p.parse_args()
    n = write(a.out_dir, a.random, a.seed)
    print(f"{n} records per shape written to {a.out_dir}")


if __name__ == "__main__":
    main()
