from spacy_elmo.pretrain.data import MAX_PARAGRAPH_CHARS, read_sentences


def test_sentencizer_joins_hard_wrapped_lines_and_drops_the_bom(tmp_path):
    # the novels' layout: BOM, CRLF, lines wrapped at ~70 characters, blank lines between paragraphs
    text = "\ufeffChapter 1\r\n\r\nThe door was shut, and the usual\r\nnoises refilled the place. Then he\r\nleft.\r\n\r\n\"Well?\"\r\n"
    path = tmp_path / "novel.txt"
    path.write_bytes(text.encode("utf8"))
    sentences = read_sentences(path, sentences="sentencizer")
    assert sentences == [
        ["Chapter", "1"],
        ["The", "door", "was", "shut", ",", "and", "the", "usual", "noises", "refilled", "the", "place", "."],
        ["Then", "he", "left", "."],
        ['"', "Well", "?", '"'],
    ]


def test_lines_mode_keeps_one_sentence_per_line(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("\ufeffOne line here\nand another\n\n", encoding="utf8")
    assert read_sentences(path, sentences="lines") == [["One", "line", "here"], ["and", "another"]]


def test_a_file_without_blank_lines_is_cut_into_bounded_paragraphs(tmp_path):
    line = "word " * 199 + "end.\n"
    path = tmp_path / "wall.txt"
    n_lines = 3 * MAX_PARAGRAPH_CHARS // len(line)
    path.write_text(line * n_lines, encoding="utf8")
    sentences = read_sentences(path, sentences="sentencizer", max_length=1000)
    assert sum(len(s) for s in sentences) == n_lines * 201
