"""data/README.md holds exactly the contracts rendered from features.contracts (no drift)."""

from __future__ import annotations

from features.contracts import TABLES
from features.contracts_doc import (
    BEGIN_MARKER,
    END_MARKER,
    generated_section,
    readme_path,
    render_contracts_markdown,
    replace_generated_section,
)


def test_readme_holds_the_rendered_contracts():
    text = readme_path().read_text(encoding="utf-8")
    assert text.count(BEGIN_MARKER) == 1 and text.count(END_MARKER) == 1
    assert generated_section(text) == render_contracts_markdown(), (
        "data/README.md is out of date: run "
        '`python -c "from features.contracts_doc import write_readme; write_readme()"`'
    )


def test_rendering_covers_every_table_and_column():
    rendered = render_contracts_markdown()
    for table in TABLES.values():
        assert f"### `{table.name}`" in rendered
        for col in table.columns:
            assert f"| `{col.name}` |" in rendered
    # A '|' inside a description must not break the Markdown table.
    assert "separated by '\\|'" in rendered


def test_replace_generated_section_keeps_the_hand_written_text():
    text = f"# Title\nhand-written\n{BEGIN_MARKER}\nstale\n{END_MARKER}\nafter\n"
    updated = replace_generated_section(text)
    assert updated.startswith("# Title\nhand-written\n") and updated.endswith(f"{END_MARKER}\nafter\n")
    assert generated_section(updated) == render_contracts_markdown()
