"""EVAR-style metadata CSVs: one reader and one class numbering for training and evaluation."""

import pytest

from ssl_toolkit.audio.metadata import class_ids, read_metadata_csv, sort_classes


def test_class_numbering_sorts_names_and_integers_by_value():
    assert sort_classes(["b", "a", "b", "10"]) == ["10", "a", "b"]
    assert sort_classes(["10", "2", "-1", "2"]) == ["-1", "2", "10"]
    assert class_ids(["7", "3", "10", "3"]) == ([1, 0, 2, 0], ["3", "7", "10"])
    assert class_ids(["yes", "", None, "no"]) == ([1, -1, -1, 0], ["no", "yes"])
    assert class_ids([None, None]) == ([-1, -1], [])


def test_reader_strips_and_checks(tmp_path):
    p = tmp_path / "m.csv"
    p.write_bytes("\ufefffile_name , label\n a.wav , x \n\nb.wav,\n".encode())
    table = read_metadata_csv(p)
    assert table.columns == ["file_name", "label"]
    assert table.rows == [{"file_name": "a.wav", "label": "x"}, {"file_name": "b.wav", "label": ""}]
    p.write_text("path,label\nx.wav,1\n")
    with pytest.raises(ValueError, match="needs a 'file_name' column"):
        read_metadata_csv(p)
    p.write_bytes(b"file_name\n\xff\xfe.wav\n")
    with pytest.raises(ValueError, match="not UTF-8"):
        read_metadata_csv(p)


@pytest.mark.parametrize(
    "body, line, n",
    [
        ("a.wav,x\nb.wav,y,extra\n", 3, 3),  # one field too many (an unquoted comma)
        ("a.wav,x\nb.wav\n", 3, 1),  # one too few: a missing value would silently become ''
        ('a.wav,"x, y"\nb.wav,y\n', None, None),  # a quoted comma is one field
    ],
)
def test_ragged_rows_are_refused_naming_the_line(tmp_path, body, line, n):
    p = tmp_path / "m.csv"
    p.write_text("file_name,label\n" + body)
    if line is None:
        assert read_metadata_csv(p).rows[0]["label"] == "x, y"
        return
    with pytest.raises(ValueError, match=rf"m.csv line {line}: {n} fields, but the header has 2 \(file_name, label\)"):
        read_metadata_csv(p)
    p.write_bytes(b"file_name,label\na.wav,\"x\n")  # an unterminated quote
    with pytest.raises(ValueError, match="m.csv line"):
        read_metadata_csv(p)
