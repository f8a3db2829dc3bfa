#!/usr/bin/env python3
"""Test facts of the Scala original (narrative-io/narrative-facebook-connector):
AudienceParserSpec.scala (record -> member) and FacebookClientSpec.scala (members -> payload),
restated as legacy records and the CLI's expected output. Used by scripts/diffcheck.py.

Deliberate differences from the original, per normalization.md: the original's member had a
last-name initial `LI` (FacebookClientSpec's payload schema lists it between LN and MADID); the
spec's schema has no LI, so the expected payload below is the original's with the LI column removed.
"""

HEM = "d64ac45af268c53ea74ad3ef3dbc7102cd0aa9b63cb59456122be981d3bf2ade"
HEM2 = "0b9383907749fcb5121c25f9af1710e192cc521c85f49eeb3742a44bd6af66ea"
HEM3 = "850a1ec9bdbb01c9650344d96e0403fe27b4ce75efbad620b14b47692340bb78"
SHA1 = "32c281951528fda472cc53ea2c5c81b9d50f184e"
MAID = "98c4a93c-0101-4898-90b4-9a15c97150cd"
ADID = "966a15b1-6505-4cb7-ba30-3342c5019112"
IDFA = "4c817c83-61e6-45c1-83d6-17492e04ba97"
MAID2 = "efd1fd36-1827-41a5-8183-b6230a77613f"
S10 = "4a44dc15364204a80fe80e9039455cc1608281820fe2b24f1e5233ade6af1dd5"
S03 = "0b8efa5a3bf104413a725c6ff0459a6be12b1fd33314cbb138745baf39504ae5"
S1980 = "051c2e380d07844ffaca43743957f8c0efe2bdf74c6c1e6a9dcccb8d1a3c596b"
S1999 = "ce8457d59078a699acb70416f88155a96a906b7b7aad43708402e3a3bcc8a4b4"
SCA = "6959097001d10501ac7d54c0bdb8db61420f658f2922cc26e46d536119a31126"
SUS = "79adb2a2fce5c6ba215fe5f27f532d4e7edbac4b6a5e09e1ef3a08084a904621"
SF = "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111"
SM = "62c66a7a5dd70c3146618063c344e531e6d4b59e379808443ce962b3abd63c5a"
SALICE = "2bd806c97f0e00af1a1fc3328fa763a9269723c8db8fac4f93af71db186d6e90"
SA = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
SBOWERS = "c9561ea9ac17200ef167c850f3268f346f737ad0d3c48ed3996a9ca73689803c"
SB = "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"

PN = {"family_name": "Bowers", "full_name": "Alice Bowers", "given_name": "Alice"}
NAMES = {"FN": SALICE, "FI": SA, "LN": SBOWERS}

# (label, `data` object of the legacy record, expected member as the CLI prints it)
PARSER_CASES = [
    ("orig-birthdate", {"birthdate": "1980-03-10T00:00:00Z"}, {"DOBD": S10, "DOBM": S03, "DOBY": S1980}),
    ("orig-birth-year", {"birth_year": 1999}, {"DOBY": S1999}),
    ("orig-birth-invalid", {"foobar": 1999}, {}),
    ("orig-country", {"iso_3166_1_country": "CA"}, {"COUNTRY": SCA}),
    ("orig-country-invalid", {"foo": "bar"}, {}),
    ("orig-gender-female", {"hl7_gender": {"gender": "female"}}, {"GEN": SF}),
    ("orig-gender-male", {"hl7_gender": {"gender": "male"}}, {"GEN": SM}),
    ("orig-hem-unique-id", {"unique_id": {"type": "sha256_email", "value": HEM}}, {"EMAIL": HEM}),
    ("orig-hem-unique-id-sha1", {"unique_id": {"type": "sha1_email", "value": SHA1}}, {}),
    ("orig-hem-hashed-email", {"hashed_email": {"type": "sha256_email", "value": HEM}}, {"EMAIL": HEM}),
    ("orig-hem-hashed-email-sha1", {"hashed_email": {"type": "sha1_email", "value": SHA1}}, {}),
    ("orig-hem-sha256", {"sha256_hashed_email": {"value": HEM}}, {"EMAIL": HEM}),
    ("orig-hem-multi-1", {"hashed_email": {"type": "sha256_email", "value": HEM2},
                          "unique_id": {"type": "sha256_email", "value": HEM}}, {"EMAIL": HEM}),
    ("orig-hem-multi-2", {"hashed_email": {"type": "sha256_email", "value": HEM2},
                          "unique_id": {"type": "sha1_email", "value": SHA1}}, {"EMAIL": HEM2}),
    ("orig-hem-multi-3", {"hashed_email": {"type": "sha256_email", "value": HEM2},
                          "sha256_hashed_email": {"value": HEM3}}, {"EMAIL": HEM2}),
    ("orig-hem-multi-4", {"hashed_email": {"type": "sha1_email", "value": SHA1},
                          "sha256_hashed_email": {"value": HEM3}}, {"EMAIL": HEM3}),
    ("orig-maid-adid", {"android_advertising_id": {"value": MAID}}, {"MADID": MAID}),
    ("orig-maid-idfa", {"apple_idfa": {"value": MAID}}, {"MADID": MAID}),
    ("orig-maid-maid", {"mobile_id_unique_identifier": {"value": MAID}}, {"MADID": MAID}),
    ("orig-maid-uid-adid", {"unique_id": {"type": "adid", "value": ADID}}, {"MADID": ADID}),
    ("orig-maid-uid-idfa", {"unique_id": {"type": "idfa", "value": IDFA}}, {"MADID": IDFA}),
    ("orig-maid-uid-notype", {"unique_id": {"value": MAID}}, {"MADID": MAID}),
    ("orig-maid-uid-ttd", {"unique_id": {"type": "ttd_id", "value": IDFA}}, {}),
    ("orig-maid-multi-1", {"apple_idfa": {"value": MAID}, "unique_id": {"type": "adid", "value": MAID2}},
     {"MADID": MAID2}),
    ("orig-maid-multi-2", {"apple_idfa": {"value": MAID}, "unique_id": {"type": "sha1_email", "value": SHA1}},
     {"MADID": MAID}),
    ("orig-maid-multi-3", {"apple_idfa": {"value": MAID}, "mobile_id_unique_identifier": {"value": MAID2}},
     {"MADID": MAID2}),
    ("orig-name", {"person_name": PN}, NAMES),
    ("orig-name-first", {"person_name": {"full_name": "Alice Bowers", "given_name": "Alice"}},
     {"FN": SALICE, "FI": SA}),
    ("orig-name-last", {"person_name": {"family_name": "Bowers", "full_name": "Alice Bowers"}},
     {"LN": SBOWERS}),
    ("orig-name-full-only", {"person_name": {"full_name": "Alice Bowers"}}, {}),
    ("orig-mix", {"birthdate": "1980-03-10T00:00:00Z", "iso_3166_1_country": "US",
                  "hashed_email": {"type": "sha1_email", "value": SHA1}, "person_name": PN,
                  "sha256_hashed_email": {"value": HEM}, "unique_id": {"type": "adid", "value": ADID}},
     {"DOBD": S10, "DOBM": S03, "DOBY": S1980, "COUNTRY": SUS, "EMAIL": HEM, **NAMES, "MADID": ADID}),
]

# FacebookClientSpec: two members; records that yield them, and the expected payload (LI removed).
PAYLOAD_RECORDS = [
    {"birthdate": "1980-03-10T00:00:00Z", "iso_3166_1_country": "US",
     "sha256_hashed_email": {"value": HEM}, "person_name": {"given_name": "Alice", "family_name": "Bowers"},
     "unique_id": {"type": "adid", "value": ADID}},
    {"hl7_gender": {"gender": "male"}, "unique_id": {"type": "adid", "value": ADID}},
]
ORIGINAL_SCHEMA = ["DOBD", "DOBM", "DOBY", "COUNTRY", "EMAIL", "FN", "FI", "GEN", "LN", "LI", "MADID"]
ORIGINAL_DATA = [
    [S10, S03, S1980, SUS, HEM, SALICE, SA, "", SBOWERS, SB, ADID],
    ["", "", "", "", "", "", "", SM, "", "", ADID],
]


def expected_payload():
    keep = [i for i, k in enumerate(ORIGINAL_SCHEMA) if k != "LI"]
    return {"schema": [ORIGINAL_SCHEMA[i] for i in keep],
            "data": [[row[i] for i in keep] for row in ORIGINAL_DATA]}
