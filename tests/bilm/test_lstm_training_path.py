"""The packed autograd path of the LSTM against the in-place inference path and per-sentence runs."""
import torch

from spacy_elmo.bilm import BiLM, BiLMConfig, batch_to_ids

SENTENCES = [["a", "b", "c", "d", "e"], ["f"], ["g", "h", "i"], [], ["j", "k", "l", "m", "n", "o", "p"], ["q", "r"]]


def _bilm():
    torch.manual_seed(0)
    config = BiLMConfig(char_embedding_dim=4, filters=((1, 4), (2, 4)), n_highway=1, lstm_dim=12, projection_dim=6,
                        n_layers=2, cell_clip=0.5, proj_clip=0.4)
    return BiLM(config)


def test_outputs_and_final_state_match_the_inference_path():
    bilm = _bilm()
    ids = batch_to_ids(SENTENCES)
    state = bilm.lstm.zero_state(len(SENTENCES), torch.zeros(1))
    state = type(state)(torch.randn_like(state.h) * 0.1, torch.randn_like(state.c) * 0.1)
    with torch.no_grad():
        exact = bilm(ids, state, return_state=True)
    trained = bilm(ids, state, return_state=True)
    assert trained.layers.requires_grad
    torch.testing.assert_close(trained.layers.detach(), exact.layers, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(trained.state.h.detach(), exact.state.h, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(trained.state.c.detach(), exact.state.c, atol=1e-6, rtol=1e-5)


def test_gradients_equal_the_sum_of_per_sentence_gradients():
    bilm = _bilm()
    weights = torch.randn(3, len(SENTENCES), 7, 12)  # a fixed random loss over every output

    def loss_of(rows):
        out = bilm(batch_to_ids([SENTENCES[r] for r in rows])).layers
        return sum((out[:, k] * weights[:, r, : out.shape[2]]).sum() for k, r in enumerate(rows))

    bilm.zero_grad()
    loss_of(range(len(SENTENCES))).backward()
    batched = {name: p.grad.clone() for name, p in bilm.named_parameters()}
    bilm.zero_grad()
    for r in range(len(SENTENCES)):
        loss_of([r]).backward()
    for name, p in bilm.named_parameters():
        torch.testing.assert_close(batched[name], p.grad, atol=1e-5, rtol=1e-4, msg=name)
