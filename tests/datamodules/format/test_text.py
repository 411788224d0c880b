"""Table text: UTF-8 (BOM optional) and UTF-16 with BOM are read; anything else names the file and the byte."""
import codecs

import pytest

from datamodules.format.text import TableTextError, open_text, read_text

TEXT = "filename\tcaption\ncafé.wav\tun café noir\n"


@pytest.mark.parametrize("encoded", [
    TEXT.encode("utf-8"),
    codecs.BOM_UTF8 + TEXT.encode("utf-8"),
    codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"),
    codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"),
])
@pytest.mark.bad_input
def test_utf8_and_utf16_with_bom_read_the_same(tmp_path, encoded):
    path = tmp_path / "t.tsv"
    path.write_bytes(encoded)
    assert read_text(str(path)) == TEXT
    with open_text(str(path)) as f:
        assert f.readlines() == ["filename\tcaption\n", "café.wav\tun café noir\n"]


@pytest.mark.bad_input
def test_crlf_line_ends_are_kept_for_csv(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"a,b\r\n1,2\r\n")
    assert open_text(str(path)).read() == "a,b\r\n1,2\r\n"


@pytest.mark.bad_input
def test_latin1_names_the_byte_and_line(tmp_path):
    path = tmp_path / "labels.tsv"
    path.write_bytes(TEXT.encode("latin-1"))  # "é" is the single byte 0xE9 at offset 17 + 3
    with pytest.raises(TableTextError) as err:
        read_text(str(path))
    assert str(err.value) == f"{path}: not UTF-8 text at byte 20 (line 2; save it as UTF-8)"


@pytest.mark.bad_input
def test_utf16_without_bom_is_refused(tmp_path):
    path = tmp_path / "labels.tsv"
    path.write_bytes(TEXT.encode("utf-16-le"))
    with pytest.raises(TableTextError, match=r"labels.tsv: not UTF-8 text at byte 1 \(line 1, a NUL byte: "
                                              r"UTF-16 without a byte-order mark\?; save it as UTF-8\)"):
        read_text(str(path))


@pytest.mark.bad_input
def test_broken_utf16_after_bom_counts_the_bom(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_bytes(codecs.BOM_UTF16_LE + "ab".encode("utf-16-le") + b"\x00\xd8")  # a lone high surrogate
    with pytest.raises(TableTextError, match=r"at byte 6 \(line 1, UTF-16-LE after its byte-order mark"):
        read_text(str(path))
