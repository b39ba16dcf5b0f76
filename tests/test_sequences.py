"""The sequence catalog is data, checked at start-up with errors that say where."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from notion_queue.errors import ConfigError
from notion_queue.sequences import load_catalog, parse_offset
from notion_queue.templates import load_packaged_templates

KNOWN = load_packaged_templates()


def catalog_file(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "sequences.toml"
    path.write_text(body)
    return path


def test_the_packaged_catalog_matches_the_design() -> None:
    catalog = load_catalog(known_templates=KNOWN)
    offsets = {name: [step.offset for step in seq.steps] for name, seq in catalog.sequences.items()}
    days, hours = timedelta(days=1), timedelta(hours=1)
    assert offsets == {
        "lead_nurture": [0 * days, 2 * days, 4 * days, 6 * days, 8 * days],
        "five_day": [0 * hours, 24 * hours, 72 * hours, 96 * hours, 120 * hours],
        "noshow_recovery": [timedelta(minutes=5), 24 * hours, 48 * hours],
        "postcall_maybe": [hours, 3 * days, 7 * days],
        "onboarding": [hours, days, 3 * days],
        "precall_prep": [-3 * days, -days, -2 * hours],
    }
    assert catalog["five_day"].steps[0].sent_by_website
    assert catalog["precall_prep"].cancels == ("five_day", "noshow_recovery")


@pytest.mark.parametrize(
    ("steps", "anchor", "message"),
    [
        (
            '{ template = "christmas_emial_2", offset = "1d" }',
            "event",
            "unknown template 'christmas_emial_2'",
        ),
        (
            '{ template = "lead_nurture_email_1", offset = "2d" }, { template = "lead_nurture_email_2", offset = "1d" }',
            "event",
            "steps must be in the order they are sent",
        ),
        (
            '{ template = "precall_prep_email_1", offset = "1h" }',
            "meeting_start",
            "offset must not be positive on a meeting_start anchor",
        ),
        (
            '{ template = "lead_nurture_email_1", offset = "2 weeks" }',
            "event",
            "is not a number and a unit",
        ),
        ('{ template = "lead_nurture_email_1" }', "tomorrow", "anchor 'tomorrow' is not one of"),
    ],
)
def test_a_broken_catalog_names_the_problem(
    tmp_path: Path, steps: str, anchor: str, message: str
) -> None:
    path = catalog_file(tmp_path, f'[sequences.mine]\nanchor = "{anchor}"\nsteps = [{steps}]\n')

    with pytest.raises(ConfigError) as error:
        load_catalog(path, known_templates=KNOWN)

    assert message in str(error.value)
    assert str(path) in str(error.value) and "'mine'" in str(error.value)


def test_a_missing_sequences_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SEQUENCES_FILE"):
        load_catalog(tmp_path / "nope.toml")


def test_offsets() -> None:
    assert parse_offset("-2h") == timedelta(hours=-2)
    assert parse_offset("5m") == timedelta(minutes=5)
    assert parse_offset("+3d") == timedelta(days=3)
