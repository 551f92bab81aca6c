"""Case ids bind their owner: only the agency that made one passes the check."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from intelshare.ids import case_id_owned_by, is_message_id, new_case_id, new_message_id

agencies = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=32)


@given(owner=agencies, other=agencies, ms=st.integers(min_value=0, max_value=2**48 - 1))
def test_a_case_id_is_a_message_id_owned_by_its_maker_only(owner: str, other: str, ms: int) -> None:
    case_id = new_case_id(owner, now_ms=ms)
    assert is_message_id(case_id)
    assert case_id_owned_by(case_id, owner)
    if other != owner:
        assert not case_id_owned_by(case_id, other)


def test_ids_not_made_for_an_owner_do_not_pass() -> None:
    # Plain message ids (and every case id made before the binding) carry no
    # owner; 200 of them pass by chance with probability about 200 / 2^32.
    assert not any(case_id_owned_by(new_message_id(), "nl-customs") for _ in range(200))
    assert not case_id_owned_by("not-a-uuid", "nl-customs")
    made = new_case_id("nl-customs")
    assert not case_id_owned_by(made.upper(), "nl-customs")  # canonical text only


def test_case_ids_of_one_owner_stay_distinct_within_a_millisecond() -> None:
    ids = {new_case_id("nl-customs", now_ms=1_700_000_000_000) for _ in range(2000)}
    assert len(ids) == 2000
