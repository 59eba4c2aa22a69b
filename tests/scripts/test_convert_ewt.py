"""scripts/convert_ewt.py: UD CoNLL-U + UNER IOB2 -> Docs."""
import sys

import spacy

from ..conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from convert_ewt import ewt_docs, main, read_conllu, read_iob2  # noqa: E402

sys.path.pop(0)

CONLLU = """# sent_id = s1
# text = I don't know.
1	I	I	PRON	PRP	_	4	nsubj	_	_
2-3	don't	_	_	_	_	_	_	_	_
2	do	do	AUX	VBP	_	4	aux	_	_
3	n't	not	PART	RB	_	4	advmod	_	_
4	know	know	VERB	VB	_	0	root	_	SpaceAfter=No
5	.	.	PUNCT	.	_	4	punct	_	_

# sent_id = s2
# text = In the city of Paris.
1	In	in	ADP	IN	_	3	case	_	_
2	the	the	DET	DT	_	3	det	_	_
3	city	city	NOUN	NN	_	0	root	_	_
4	of	of	ADP	IN	_	5	case	_	_
5	Paris	Paris	PROPN	NNP	_	3	nmod	_	SpaceAfter=No
5.1	x	x	X	X	_	_	_	_	_
6	.	.	PUNCT	.	_	3	punct	_	_

"""

IOB2 = """# sent_id = s2
1	In	O	-	-
2	the	O	-	-
3	city	O	-	-
4	of	O	-	-
5	Paris	B-LOC	-	x
6	.	O	-	-

# sent_id = s1
1	I	B-OTH	-	-
2	do	I-OTH	-	-
3	n't	O
4	know	B-O	-	-
5	.	O	-	-
"""


def test_conllu_words_spaces_and_trees(tmp_path):
    (tmp_path / "a.conllu").write_text(CONLLU)
    s1, s2 = read_conllu(tmp_path / "a.conllu")
    assert s1.words == ["I", "do", "n't", "know", "."]
    assert s1.spaces == [True, False, True, False, True]
    assert s1.heads == [3, 3, 3, 3, 3]
    # a multiword token in sentence 1 must not glue words of sentence 2
    assert s2.words == ["In", "the", "city", "of", "Paris", "."] and s2.spaces == [True, True, True, True, False, True]


def test_entities_aligned_by_sent_id_and_draft_labels_mapped(tmp_path):
    (tmp_path / "a.conllu").write_text(CONLLU)
    (tmp_path / "a.iob2").write_text(IOB2)
    assert read_iob2(tmp_path / "a.iob2")["s1"][1] == ["O"] * 5  # OTH and the spurious O type
    docs, stats = ewt_docs(spacy.blank("en").vocab, tmp_path / "a.conllu", tmp_path / "a.iob2", n_sents=10)
    assert len(docs) == 1 and stats["ner_aligned"] == 2 and stats["entities"] == 1
    doc = docs[0]
    assert doc.text == "I don't know. In the city of Paris. "
    assert [(e.text, e.label_) for e in doc.ents] == [("Paris", "LOC")]
    assert [t.tag_ for t in doc][:3] == ["PRP", "VBP", "RB"] and doc[3].dep_ == "root"
    assert len(list(doc.sents)) == 2


def test_command_line(tmp_path, capsys):
    from spacy.tokens import DocBin

    (tmp_path / "a.conllu").write_text(CONLLU)
    (tmp_path / "a.iob2").write_text(IOB2)
    out = tmp_path / "out" / "train.spacy"
    assert main([str(out), "--conllu", str(tmp_path / "a.conllu"), "--ner", str(tmp_path / "a.iob2")]) == 0
    assert "Wrote 1 docs" in capsys.readouterr().err
    docs = list(DocBin().from_disk(out).get_docs(spacy.blank("en").vocab))
    assert [(e.text, e.label_) for e in docs[0].ents] == [("Paris", "LOC")]
    assert main([str(out), "--conllu", str(tmp_path / "missing.conllu")]) == 1
    assert "missing.conllu not found" in capsys.readouterr().err
    assert main([str(out)]) == 1
    assert "Give --conllu, --ner or both" in capsys.readouterr().err
