"""python -m spacy_elmo quantize: an int8-only copy of a pipeline, the same outputs as the pipeline in int8."""
import numpy as np
import pytest
import spacy
import torch

from spacy_elmo.cli import main

TEXTS = ["The cat sat on the mat .", "", "   ", "Ünïcödé 東京 ok", "word " * 60, "a" * 80]
INT8 = {"components": {"elmo": {"model": {"precision": "int8"}}}}


@pytest.fixture()
def pipeline(tmp_path, reference_options, reference_weights):
    out = tmp_path / "exact"
    assert main(["init-pipeline", str(out), str(reference_options), str(reference_weights), "--sentencizer"]) == 0
    return out


def _bilm(nlp):
    from spacy_elmo.layers.bilm_wrapper import get_torch_bilm

    return get_torch_bilm(nlp.get_pipe("elmo").bilm_layer)


def _tensors(nlp):
    return [doc.tensor for doc in nlp.pipe(TEXTS)]


def _lstm_bytes(path):
    return (path / "elmo" / "model").stat().st_size


def test_quantized_copy_gives_the_int8_outputs_in_a_quarter_of_the_lstm_memory(pipeline, tmp_path, capsys):
    from spacy_elmo.bilm.precision import FLOAT_FREED, INT8 as PACKED, INT8_BF16, int8_weights

    out = tmp_path / "int8"
    assert main(["quantize", str(pipeline), str(out)]) == 0
    assert "int8 only" in capsys.readouterr().err
    exact_in_int8 = spacy.load(pipeline, config=INT8)
    quantized = spacy.load(out)
    assert quantized.config["components"]["elmo"]["model"]["precision"] == "int8"
    for got, want in zip(_tensors(quantized), _tensors(exact_in_int8)):
        np.testing.assert_array_equal(got, want)
    bilm, kept = _bilm(quantized), _bilm(exact_in_int8)
    assert getattr(bilm, FLOAT_FREED) and all(p.numel() == 0 for p in int8_weights(bilm))
    int8_bytes = sum(torch.ops.quantized.linear_unpack(q)[0].numel() for p in int8_weights(bilm) for q in getattr(p, PACKED))
    assert int8_bytes * 4 == sum(p.numel() * 4 for p in int8_weights(kept))
    # the projections' bf16 values travel with the int8 ones (run where the CPU has native bf16)
    projections = [layer.w_proj for layer in bilm.lstm.layers]
    assert all(torch.equal(getattr(p, INT8_BF16), getattr(k.w_proj, INT8_BF16)) for p, k in zip(projections, kept.lstm.layers))
    assert _lstm_bytes(out) < _lstm_bytes(pipeline)
    # saved again and loaded again: still the same outputs (the int8 values and scales round-trip)
    quantized.to_disk(tmp_path / "again")
    for got, want in zip(_tensors(spacy.load(tmp_path / "again")), _tensors(exact_in_int8)):
        np.testing.assert_array_equal(got, want)
    # bytes round-trip too (what nlp.pipe(n_process=N) does)
    from spacy_elmo.layers.bilm_wrapper import deserialize_bilm, serialize_bilm

    again = deserialize_bilm(None, serialize_bilm(bilm), torch.device("cpu"))
    assert getattr(again, FLOAT_FREED)


def test_quantized_copy_refuses_fp32_and_names_the_fix(pipeline, tmp_path):
    out = tmp_path / "int8"
    assert main(["quantize", str(pipeline), str(out)]) == 0
    with pytest.raises(ValueError, match=r"int8 only.*precision 'fp32'.*load the pipeline it was quantized from"):
        spacy.load(out, config={"components": {"elmo": {"model": {"precision": "fp32"}}}})


def test_quantize_bad_input_is_a_clear_error(pipeline, tmp_path, capsys):
    assert main(["quantize", str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 1
    assert "not a saved spaCy pipeline" in capsys.readouterr().err
    assert main(["quantize", str(pipeline), str(pipeline)]) == 1
    assert "another folder" in capsys.readouterr().err
    blank = tmp_path / "blank"
    spacy.blank("en").to_disk(blank)
    assert main(["quantize", str(blank), str(tmp_path / "out")]) == 1
    assert "nothing to quantize" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_corrupt_int8_bilm_names_the_fix(pipeline, tmp_path):
    """Saved int8 values or bf16 projections of the wrong shape, or missing ones, are a clear
    error that says to quantize again, not a failure deep in torch."""
    import io

    from spacy_elmo.layers.bilm_wrapper import deserialize_bilm, serialize_bilm

    assert main(["quantize", str(pipeline), str(tmp_path / "int8")]) == 0
    data = serialize_bilm(_bilm(spacy.load(tmp_path / "int8")))
    for name, damage in (("lstm.layers.0.w_proj.bf16", lambda t: t[:, :3]), ("lstm.layers.1.w_input.int8", None)):
        saved = torch.load(io.BytesIO(data), weights_only=True)
        if damage is None:
            del saved["int8"][name]
        else:
            saved["int8"][name] = damage(saved["int8"][name])
        buffer = io.BytesIO()
        torch.save(saved, buffer)
        with pytest.raises(ValueError, match=r"int8 biLM is corrupt.*quantize the pipeline it came from again"):
            deserialize_bilm(None, buffer.getvalue(), torch.device("cpu"))
