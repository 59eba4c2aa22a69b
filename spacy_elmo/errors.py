"""One place for every error and warning text of spacy-elmo.

Plain Python on purpose: ``spacy_elmo.bilm`` imports this module and must stay
free of spaCy and Thinc imports. Codes are stable once released (``E0xx`` for
errors, ``W0xx`` for warnings); texts may improve.
"""


class ErrorsWithCodes(type):
    """Metaclass that prefixes each message with its code, as spaCy does."""

    def __getattribute__(self, code: str) -> str:
        msg = super().__getattribute__(code)
        if code.startswith("__"):
            return msg
        return f"[{code}] {msg}"


class Warnings(metaclass=ErrorsWithCodes):
    W001 = (
        "Weight file {path} holds datasets this model does not use, which are "
        "ignored and will not be written back: {names}."
    )


class Errors(metaclass=ErrorsWithCodes):
    # Options (options.json)
    E001 = (
        "Options file {path} not found. Pass the options.json that belongs to "
        "the weight file (AllenNLP names it *_options.json)."
    )
    E002 = (
        "Options file {path} is not valid JSON ({err}). It should be the "
        "options.json written next to the weights by bilm-tf or AllenNLP."
    )
    E003 = (
        "Options {path} lack the key '{key}'. A biLM options file needs "
        "lstm.{{dim, projection_dim, n_layers}} and char_cnn.{{embedding.dim, "
        "filters, n_highway, activation}}; add the key or use the options.json "
        "that came with the weights."
    )
    E004 = "Options {path}: '{key}' has the invalid value {value!r}: {why}."
    # Weights (HDF5)
    E010 = (
        "Weight file {path} not found. Pass the weights.hdf5 that belongs to "
        "the options (AllenNLP names it *_weights.hdf5)."
    )
    E011 = (
        "Weight file {path} is not an HDF5 file ({err}). It may be truncated "
        "by an interrupted download or be another format: fetch it again."
    )
    E012 = (
        "Weight file {path} has no dataset '{name}'. Check that the options "
        "and weights belong to the same model ({detail})."
    )
    E013 = (
        "Weight file {path}: dataset '{name}' has shape {actual}, but the "
        "options ({options}) imply {expected}. The options and weights belong "
        "to different models: pass the options.json released with these weights."
    )
    E014 = "Weight file {path} could not be written: {err}."
    E015 = (
        "Weight file {path}: dataset {name} {what}; every ELMo vector would "
        "be garbage. The file is damaged or not an ELMo weight file: download "
        "or export it again."
    )
    # Character ids and model inputs
    E020 = (
        "Expected a list of tokens (a list of str) for sentence {index}, got "
        "{type}. Tokenise first, e.g. text.split()."
    )
    E021 = (
        "Character ids must be an integer tensor of shape (batch, seq_len, "
        "{n_chars}), got shape {shape} and dtype {dtype}."
    )
    E022 = (
        "The LSTM state does not fit this batch: expected h {h_shape} and c "
        "{c_shape}, got {got_h} and {got_c}."
    )
    E023 = "max_characters_per_token must be at least 3 (BOW, one byte, EOW), got {value}."
    E024 = "Invalid token_cache_mb {value!r}: give the cache size in MiB, a number >= 0 (0 turns the cache off)."
    # embed command
    E030 = "Input file {path} not found."
    E031 = "Input file {path}, line {line}: not valid UTF-8 ({err})."
    E032 = "Input file {path}, line {line}: not valid JSON ({err}). Each line of a .jsonl file must be a JSON list of token strings."
    E033 = "Input file {path}, line {line}: expected a JSON list of strings, got {got}."
    E034 = "--batch-size must be a positive number of sentences, got {value}."
    E035 = "Output file {path} could not be written: {err}."
    E036 = (
        "{folder} holds the parts of another embed run (other input, weights "
        "or settings). Delete the folder to start afresh, or rerun the command "
        "that made it to finish that run."
    )
    E037 = "Output file {path} is also the {what} file: it would be destroyed. Write the vectors to another file."
    E038 = "Cannot use device {device!r}: {why}. Use --device cpu, or a GPU that torch sees (torch.cuda.device_count())."
    # The elmo component
    E040 = (
        "The '{name}' component has no biLM weights yet. Call nlp.initialize() "
        "(it reads them from the component's 'source'), or load a saved pipeline."
    )
    E041 = (
        "Unknown ELMo source {source!r}: it is neither a published model name "
        "({names}) nor an existing path. Pass a folder holding options.json + "
        "weights.hdf5 (or AllenNLP's *_options.json + *_weights.hdf5), the two "
        "file paths as a list [options, weights], or one of the names."
    )
    E042 = (
        "ELMo folder {path} holds no options/weights pair: expected options.json "
        "+ weights.hdf5, one *options*.json + one *weights*.hdf5 (AllenNLP, "
        "PubMed, options262.json) or options.json + model.hdf5 (NLPL), or ELMoForManyLangs' config.json, char.dic, word.dic, token_embedder.pkl, encoder.pkl. Found: {found}."
    )
    E043 = (
        "ELMo folder {path} is ambiguous: candidates {found}. Pass the two file "
        "paths as a list [options, weights] instead."
    )
    E044 = (
        "Could not download the published ELMo model '{name}' ({err}). Without "
        "network access, fetch these files yourself:\n{files}\nand put them "
        "there (or pass the folder as the source). The cache folder is set by "
        "the environment variable {env}."
    )
    E045 = (
        "Invalid mix {mix!r} for the ELMo layers: use 'scalar' (learned softmax "
        "weights and scale), 'average', 'top' or 'all' (layers concatenated)."
    )
    E046 = (
        "The '{name}' component is configured with width = {width}, but the "
        "weights from {source} give {natural} with mix = '{mix}'. Set "
        "width = {natural} (and ${{components.{name}.model.width}} follows "
        "in listeners), or set project = true to learn a projection to {width}."
    )
    E047 = "Invalid {what} {value!r} for the ELMo component: {why}."
    E048 = (
        "A listener of '{name}' in component '{listener}' expects width {expected}, "
        "but '{name}' produces {width}. Use width = ${{components.{name}.model.width}} "
        "in the listener."
    )
    E049 = (
        "Spans from get_spans must lie inside their doc and hold at least one "
        "token; got span [{start}:{end}] for a doc of {length} tokens."
    )
    # ELMoForManyLangs folders (bilm/efml.py)
    E070 = (
        "ELMoForManyLangs dictionary {file} has no entry {mark!r}: EFML's models "
        "need {marks}. The file is incomplete; download the model again."
    )
    E071 = (
        "ELMoForManyLangs model file {path} not found. An EFML folder ({folder}) "
        "holds {files} as the model's zip unpacks them."
    )
    E072 = "Cannot read ELMoForManyLangs file {path}: {err}. The file is damaged; download the model again."
    E073 = (
        "ELMoForManyLangs folder: {path} names the architecture file {name!r}, "
        "which is neither in the folder nor one EFML ships ({known}). Put that "
        "JSON file (with 'token_embedder' and 'encoder') next to config.json."
    )
    E074 = "ELMoForManyLangs model {path}: {what} is not supported (only the published cnn token embedder + elmo encoder)."
    E075 = (
        "Cannot read ELMoForManyLangs weights {path} safely: {err}. Only tensors "
        "are read from .pkl files (torch.load weights_only=True), never code; a "
        "file that needs more is not a model file. Download the model again."
    )
    E076 = (
        "ELMoForManyLangs weights {path}: tensor {key!r} {what}. The .pkl files "
        "do not fit the folder's config.json / dictionaries; download the model again."
    )
    E077 = (
        "This biLM ({what}) has no bilm-tf options.json + HDF5 form: its token "
        "encoder has a word embedding and dictionaries. Keep it in a spaCy "
        "pipeline (nlp.to_disk) or its ELMoForManyLangs folder."
    )
    E078 = (
        "An ELMoForManyLangs biLM (char_cnn.ids = 'efml') needs its dictionaries: "
        "the config says {chars} characters and {words} words, the vocab given has {sizes}. "
        "Load it with spacy_elmo.bilm.load_efml(folder)."
    )
    E079 = (
        "Cached model file {path} has changed since it was downloaded (SHA-256 "
        "{actual}, recorded {expected} in {record}). Delete both files to "
        "download it again."
    )
    E080 = (
        "store_layers and spacy-transformers' TransformerListener need "
        "spacy-transformers ({err}). Install it: pip install spacy-elmo[transformers]."
    )
    E081 = (
        "Cannot {action}: this biLM's LSTM holds only its int8 weights (it was "
        "set to int8 with keep_float=False, which frees the float32 ones). "
        "Load the biLM again from its files, then call set_precision('int8') "
        "(keeps the float32 weights) before you {action}."
    )
    E082 = (
        "This pipeline's biLM holds its LSTM weights in int8 only (it was saved "
        "by `python -m spacy_elmo quantize`, under a third of the float32 memory), so "
        "it cannot {what}: it runs with precision 'int8' on the CPU. For the exact "
        "fp32 path, bf16 or a GPU, load the pipeline it was quantized from."
    )
