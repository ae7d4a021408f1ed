"""PROTOCOL.md is the contract: its tables must match the code."""

from pathlib import Path

from kernsim.protocol import ERROR_TABLE, GENERIC_MESSAGES, MAX_FRAME_BYTES, render_markdown

PROTOCOL_MD = Path(__file__).resolve().parents[2] / "protocol" / "PROTOCOL.md"


def test_generic_message_table_is_the_rendered_registry() -> None:
    assert render_markdown(GENERIC_MESSAGES) in PROTOCOL_MD.read_text(encoding="utf-8")


def test_error_table_rows_match_the_code() -> None:
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    for info in ERROR_TABLE.values():
        row = f"| {info.code} | `{info.name}` | {'yes' if info.definite else 'no'} | {info.doc} |"
        assert row in text, row


def test_documented_frame_limit_matches() -> None:
    assert f"{MAX_FRAME_BYTES:,} bytes" in PROTOCOL_MD.read_text(encoding="utf-8")


def test_kernel_primitive_section_is_marked_for_generation() -> None:
    text = PROTOCOL_MD.read_text(encoding="utf-8")
    assert "### Kernel primitive messages" in text
    assert text.index("<!-- BEGIN GENERATED") < text.index("<!-- END GENERATED")


def test_kernel_primitive_section_is_the_rendered_catalog() -> None:
    """The generated section cannot drift from the model's primitive registry."""
    from kernsim.services.catalog import render_primitives_markdown

    text = PROTOCOL_MD.read_text(encoding="utf-8")
    begin = "<!-- BEGIN GENERATED: kernel primitive messages -->"
    section = text[text.index(begin) + len(begin) : text.index("<!-- END GENERATED")]
    assert section.strip() == render_primitives_markdown().strip()
