import numpy as np
import spacy

from spacy_elmo.cli import main


def test_init_pipeline_from_the_two_files(tmp_path, reference_options, reference_weights, elmo_nlp):
    out = tmp_path / "pipeline"
    assert main(["init-pipeline", str(out), str(reference_options), str(reference_weights)]) == 0
    nlp = spacy.load(out)
    assert nlp.pipe_names == ["elmo"]
    text = "A pipeline made on the command line ."
    np.testing.assert_array_equal(nlp(text).tensor, elmo_nlp(text).tensor)


def test_init_pipeline_with_sentencizer_and_errors(tmp_path, reference_options, reference_weights, capsys):
    out = tmp_path / "p"
    assert main(["init-pipeline", str(out), str(reference_options), str(reference_weights), "--sentencizer", "--mix", "top"]) == 0
    assert spacy.load(out).pipe_names == ["sentencizer", "elmo"]
    assert main(["init-pipeline", str(tmp_path / "q"), "not-a-model"]) == 1
    assert "Unknown ELMo source 'not-a-model'" in capsys.readouterr().err
    assert not (tmp_path / "q").exists()


def test_init_pipeline_from_an_elmoformanylangs_folder(tmp_path):
    import spacy

    from spacy_elmo.cli import main

    from ..bilm.efml_model import write_efml_model

    folder = write_efml_model(tmp_path / "efml")
    assert main(["init-pipeline", str(tmp_path / "pipe"), str(folder), "--lang", "de", "--sentencizer"]) == 0
    nlp = spacy.load(tmp_path / "pipe")
    assert nlp.lang == "de" and nlp("Der Hund . Die Katze .").tensor.shape == (6, 16)
