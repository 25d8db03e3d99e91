import pytest

from rooms import MAX_PASSWORD_LENGTH, check_password_strength, hash_password, scrypt_runs, verify_password

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def stored() -> str:
    return hash_password(PASSWORD)


def test_round_trip(stored):
    assert verify_password(PASSWORD, stored)


def test_wrong_password(stored):
    assert not verify_password("correct horse battery stapl", stored)
    assert not verify_password(PASSWORD.upper(), stored)


def test_stored_form_encodes_parameters_and_no_password(stored):
    scheme, n, r, p, salt, key = stored.split("$")
    assert (scheme, n, r, p) == ("scrypt", "32768", "8", "1")
    assert salt and key and PASSWORD not in stored


def test_salt_is_random():
    assert hash_password("same") != hash_password("same")


def test_unicode_forms_match():
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    assert verify_password(decomposed, hash_password(composed))


def test_longest_allowed_password():
    long = "x" * MAX_PASSWORD_LENGTH
    assert verify_password(long, hash_password(long))


@pytest.mark.parametrize(
    ("bad", "message"),
    [("", "empty"), ("x" * (MAX_PASSWORD_LENGTH + 1), "at most 1024"), (None, "string"), (b"pw", "string")],
)
def test_hash_rejects_bad_passwords(bad, message):
    with pytest.raises(ValueError, match=message):
        hash_password(bad)


@pytest.mark.parametrize("bad", ["", "x" * (MAX_PASSWORD_LENGTH + 1), None, 123])
def test_verify_treats_unusable_candidates_as_wrong(bad, stored):
    assert verify_password(bad, stored) is False


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "plaintext",
        "scrypt$32768$8$1$c2FsdA",  # too few fields
        "bcrypt$32768$8$1$c2FsdA$" + "A" * 43,
        "scrypt$abc$8$1$c2FsdA$" + "A" * 43,
        "scrypt$1000$8$1$c2FsdA$" + "A" * 43,  # n not a power of two
        "scrypt$1073741824$8$1$c2FsdA$" + "A" * 43,  # n would need 1 TiB
        "scrypt$32768$999$1$c2FsdA$" + "A" * 43,
        "scrypt$32768$8$0$c2FsdA$" + "A" * 43,
        "scrypt$32768$8$1$$" + "A" * 43,  # empty salt
        "scrypt$32768$8$1$c2FsdA$AAAA",  # short key
        "scrypt$32768$8$1$c2FsdA$" + "\u00e9" * 43,
        123,  # (None means "no such room", below)
    ],
)
def test_verify_rejects_malformed_stored_hash(bad):
    with pytest.raises(ValueError, match="malformed"):
        verify_password(PASSWORD, bad)


# --- a room that does not exist costs the same ----------------------------------------------


def test_missing_room_runs_one_derivation_of_the_same_cost(stored):
    before = scrypt_runs()
    assert verify_password(PASSWORD, None) is False
    assert verify_password("anything at all", None) is False
    assert scrypt_runs() - before == 2
    assert verify_password(PASSWORD, stored) is True
    assert scrypt_runs() - before == 3


# --- strength at room creation --------------------------------------------------------------


@pytest.mark.parametrize("good", ["pw-123456", "correct horse", "s3cret-pw", "ÄÖÜ-straße-1"])
def test_strong_enough(good):
    check_password_strength(good, "consult")


@pytest.mark.parametrize(
    ("weak", "message"),
    [
        ("short1", "at least 8"),
        ("12345678901", "only digits"),
        ("aaaaaaaaaa", "4 different"),
        ("abababab", "4 different"),
        ("Consult-42", "room name"),
        (None, "string"),
        ("x" * (MAX_PASSWORD_LENGTH + 1), "at most 1024"),
    ],
)
def test_weak_passwords_are_refused_with_a_reason(weak, message):
    with pytest.raises(ValueError, match=message):
        check_password_strength(weak, "consult-42")
