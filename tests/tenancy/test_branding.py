"""The brand's colours stay readable whatever an agency picks."""

from __future__ import annotations

import pytest

from demandly.tenancy.branding import PAGE_BACKGROUND, Brand, contrast_ratio


@pytest.mark.parametrize("accent", ["#f2a541", "#ffff00", "#ffffff", "#2563eb", "#000000"])
def test_links_in_the_accent_colour_reach_wcag_aa_on_the_page(accent: str) -> None:
    brand = Brand(name="Agentur", accent=accent)
    assert contrast_ratio(brand.link, PAGE_BACKGROUND) >= 4.5
    assert contrast_ratio(brand.link, "#ffffff") >= 4.5
    assert f"--brand-link:{brand.link};" in brand.css_variables()


def test_a_dark_enough_accent_is_used_as_it_is() -> None:
    assert Brand(name="Agentur", accent="#2563eb").link == "#2563eb"


@pytest.mark.parametrize("color", ["#f2a541", "#0f4c81", "#777777"])
def test_text_on_a_brand_colour_is_black_or_white_whichever_reads_better(color: str) -> None:
    brand = Brand(name="Agentur", primary=color)
    other = "#ffffff" if brand.on_primary == "#111111" else "#111111"
    assert contrast_ratio(brand.on_primary, color) >= contrast_ratio(other, color)
