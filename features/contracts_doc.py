"""Renders the data contracts (``features.contracts``) as the Markdown tables of ``data/README.md``.

The README holds the rendered text between two marker comments; a test compares the two, so the
documentation cannot drift from the code. After changing a contract, refresh the README with
``python -c "from features.contracts_doc import write_readme; write_readme()"``.
"""

from __future__ import annotations

from pathlib import Path

from features.contracts import (
    BAD_TRANSACTION_LABELS,
    ID_PATTERN,
    MAX_AMOUNT,
    MAX_ID_LENGTH,
    MAX_TEXT_LENGTH,
    REQUIRED_TABLES,
    TABLES,
    TEXT_PATTERN,
    Col,
    Table,
    contract_dtype,
)

BEGIN_MARKER = (
    "<!-- BEGIN GENERATED CONTRACTS: rendered by features.contracts_doc.render_contracts_markdown(); "
    "do not edit by hand -->"
)
END_MARKER = "<!-- END GENERATED CONTRACTS -->"

_KIND_TEXT = {
    "str": "text",
    "category": "category",
    "country": "country code",
    "float": "number",
    "int": "whole number",
    "bool": "boolean",
    "timestamp": "timestamp (UTC)",
    "date": "date (UTC midnight)",
}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _dtype_text(col: Col) -> str:
    text = f"`{contract_dtype(col)}`"
    return text + " (`Int64` when it holds nulls)" if col.kind == "int" else text


def _allowed_text(table: Table, col: Col) -> str:
    parts = []
    if col.name in table.key:
        parts.append("unique")
    if col.kind == "str" and (col.name in table.key or col.foreign_key or col.name.endswith("_id")):
        parts.append("not blank")
    if col.allowed:
        parts.append(", ".join(f"`{value}`" for value in col.allowed))
    if col.kind == "country":
        parts.append("ISO 3166-1 alpha-2 code (`XK` for Kosovo)")
    if col.min_value is not None:
        parts.append(f"{'>' if col.min_exclusive else '>='} {col.min_value:g}")
    if col.max_value is not None:
        parts.append(f"<= {col.max_value:,.0f}")
    if col.kind == "str":
        parts.append("identifier (`ID_PATTERN`)" if col.identifier else "free text (`TEXT_PATTERN`)")
    if col.kind in ("timestamp", "date"):
        low, high = col.time_range
        parts.append(f"on or after {low}, " + ("not in the future" if high == "now" else f"before {high}"))
    if col.foreign_key:
        parts.append(f"an existing `{col.foreign_key}`")
    return "; ".join(parts)


def _render_table(table: Table) -> list[str]:
    presence = (
        "required in every data folder"
        if table.name in REQUIRED_TABLES
        else "optional (an absent file means an empty table)"
    )
    lines = [
        f"### `{table.name}`",
        "",
        table.description,
        "",
        f"- Key: {', '.join(f'`{k}`' for k in table.key)} (unique)",
        f"- File: `{table.name}.parquet` or `{table.name}.csv`, {presence}",
        "",
        "| column | type | required | nullable | meaning | allowed values | personal data |",
        "|---|---|---|---|---|---|---|",
    ]
    for col in table.columns:
        cells = [
            f"`{col.name}`",
            f"{_KIND_TEXT[col.kind]}, {_dtype_text(col)}",
            "yes" if col.required else "no",
            "yes" if col.nullable else "no",
            _cell(col.description),
            _cell(_allowed_text(table, col)),
            "**PII**" if col.pii else "",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if table.name == "labels":
        lines += [
            "",
            "Transaction labels that make a transaction a positive for the fraud model "
            f"(`BAD_TRANSACTION_LABELS`): {', '.join(f'`{label}`' for label in BAD_TRANSACTION_LABELS)}.",
        ]
    return lines


def _render_bounds() -> list[str]:
    """The bounds every table shares (``features.contracts``), which the service checks too."""
    return [
        "### Bounds shared by every table and by the service's requests",
        "",
        f"- Amounts, unit prices and declared volumes: at most {MAX_AMOUNT:,.0f} in any currency "
        "(`MAX_AMOUNT`), and an amount must convert to a finite USD value.",
        f"- Identifiers (`ID_PATTERN`, `{ID_PATTERN}`): 1 to {MAX_ID_LENGTH} characters of letters, digits and "
        "`_ . : @ # / + = -`, starting with a letter or digit; no spaces, control characters, "
        "escapes or bidirectional overrides.",
        f"- Free text (`TEXT_PATTERN`, `{TEXT_PATTERN}`): any script, at most {MAX_TEXT_LENGTH} "
        "characters (`MAX_TEXT_LENGTH`), without control characters (C0, DEL, C1) or "
        "bidirectional overrides and isolates.",
        "- Times: each column's range below (`TIME_RANGES`, else `DEFAULT_TIME_RANGE`); a number is "
        "never read as a time.",
    ]


def render_contracts_markdown() -> str:
    """Render the shared bounds, then every contract table: purpose, key, file, one row per column.

    Returns:
        The Markdown text (ending in a newline) that sits between ``BEGIN_MARKER`` and
        ``END_MARKER`` in ``data/README.md``.
    """
    lines: list[str] = _render_bounds()
    for table in TABLES.values():
        lines.append("")
        lines += _render_table(table)
    return "\n".join(lines) + "\n"


def replace_generated_section(text: str) -> str:
    """Return ``text`` with the part between the markers replaced by the rendered contracts.

    Raises:
        ValueError: when the markers are missing or out of order.
    """
    start, end = text.find(BEGIN_MARKER), text.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"markers {BEGIN_MARKER!r} and {END_MARKER!r} not found in order")
    head = text[: start + len(BEGIN_MARKER)]
    return head + "\n" + render_contracts_markdown() + text[end:]


def generated_section(text: str) -> str:
    """The text between the markers of a README (empty when they are missing)."""
    start, end = text.find(BEGIN_MARKER), text.find(END_MARKER)
    if start < 0 or end < start:
        return ""
    return text[start + len(BEGIN_MARKER) : end].removeprefix("\n")


def readme_path() -> Path:
    """``data/README.md`` of the checkout the package was imported from."""
    return Path(__file__).resolve().parent.parent / "data" / "README.md"


def write_readme(path: Path | None = None) -> bool:
    """Refresh the generated section of ``data/README.md``; return whether the file changed."""
    path = path or readme_path()
    text = path.read_text(encoding="utf-8")
    updated = replace_generated_section(text)
    if updated != text:
        path.write_text(updated, encoding="utf-8")
    return updated != text
