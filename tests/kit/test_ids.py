"""Ids sort in the order they were made, which lists ordered by id (newest first) rely on."""

from __future__ import annotations

from demandly.kit.ids import new_id, ulid


def test_ids_made_in_one_millisecond_keep_their_order() -> None:
    made = [ulid() for _ in range(2000)]  # far more than one per millisecond
    assert made == sorted(made)
    assert len(set(made)) == len(made)


def test_an_id_carries_its_prefix_and_a_26_character_ulid() -> None:
    prefix, _, rest = new_id("lead").partition("_")
    assert prefix == "lead"
    assert len(rest) == 26
