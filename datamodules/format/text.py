"""Reading a text table (label table, dataset metadata, class list) the same way everywhere.

Accepted: UTF-8 with or without a byte-order mark, and UTF-16 with a byte-order mark (what spreadsheet programs write
as "Unicode text"). Anything else, e.g. Latin-1 bytes or UTF-16 without a byte-order mark, is one error line naming
the file and the first bad byte: ``labels.tsv: not UTF-8 text at byte 1234 (line 7; save it as UTF-8)``.
"""
from __future__ import annotations

import codecs
import io


class TableTextError(ValueError):
    """A table file is not UTF-8 (or UTF-16 with a byte-order mark) text; the message names file and byte offset."""


def _not_utf8(path: str, data: bytes, offset: int, why: str = "") -> TableTextError:
    line = data[:offset].count(b"\n") + 1
    return TableTextError(f"{path}: not UTF-8 text at byte {offset} (line {line}{why}; save it as UTF-8)")


def read_text(path: str) -> str:
    """The text of ``path`` (UTF-8, UTF-8 with BOM, or UTF-16 with BOM), without the BOM and with its line ends.

    Raises:
        TableTextError: Bytes that are not valid in the detected encoding, or NUL characters (UTF-16 without a
            byte-order mark looks like that), naming the byte offset from the start of the file.
        OSError: The file cannot be read.
    """
    with open(path, "rb") as f:
        data = f.read()
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                          (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            body, skip = data[len(bom):], len(bom)
            break
    else:
        body, skip, encoding = data, 0, "utf-8"
    nul_hint = ", a NUL byte: UTF-16 without a byte-order mark?"
    try:
        text = body.decode(encoding)
    except UnicodeDecodeError as err:
        nul = body.find(b"\0", 0, err.start) if encoding == "utf-8" else -1
        if nul >= 0:  # the NUL comes first and says more about what the file is
            raise _not_utf8(path, data, nul, nul_hint) from None
        raise _not_utf8(path, data, skip + err.start,
                        "" if encoding == "utf-8" else f", {encoding.upper()} after its byte-order mark") from None
    nul = text.find("\0")
    if nul >= 0:
        raise _not_utf8(path, data, skip + len(text[:nul].encode(encoding)), nul_hint)
    return text


def open_text(path: str) -> io.StringIO:
    """:func:`read_text` as a text stream for ``csv.reader`` or line iteration (line ends kept, as ``newline=""``)."""
    return io.StringIO(read_text(path), newline="")
