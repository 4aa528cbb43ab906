"""A tiny causal language model built offline in code, for the quickstart, tests and benchmarks.

It trains for real (a 2-layer Llama with a 32-wide hidden state and a word-level tokenizer) in
well under a second on a CPU, and needs no download.
"""

from __future__ import annotations

from pathlib import Path

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "a training report tells the story of every run",
    "small models learn fast on a laptop cpu",
    "every run of the experiment shows up in the report",
    "the loss goes down and the report says success",
    "trackio draws the curves and the report links them",
    "fine tuning with trl takes one callback",
    "good reports survive crashes and preemption",
]


def texts(n: int = 64) -> list[str]:
    """``n`` short training sentences."""
    return [SENTENCES[i % len(SENTENCES)] for i in range(n)]


def build_tiny_model(directory: str | Path, *, seed: int = 0) -> Path:
    """Save a tiny Llama model and its tokenizer to ``directory`` (created if needed). Its weights
    come from ``seed``, so the same seed (and the same training seed) gives the same losses."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(
        SENTENCES, trainers.WordLevelTrainer(special_tokens=["<unk>", "<pad>", "<s>", "</s>"])
    )
    fast = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    config = LlamaConfig(
        vocab_size=fast.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):  # seeded here, the caller's random state untouched
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.save_pretrained(directory)
    fast.save_pretrained(directory)
    return directory
