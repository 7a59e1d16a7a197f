#!/usr/bin/env python3
"""Train the tiny byte-level BPE tokenizer used by tests: ``build_test_tokenizer.py OUT_DIR``.

No downloads: the training text is generated English-like sentences from the shipped word
list (Zipf-weighted words, capitalised sentence starts, punctuation, digits). Vocab ~1000, so
frequent words become single tokens and rarer ones stay split — like a real BPE, it is not
fitted to the word list. A ``<s> $A`` post-processor adds a BOS so tests can check that counts
exclude special tokens. Writes ``tokenizer.json`` and a minimal ``tokenizer_config.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

VOCAB_SIZE = 1000
SPECIALS = ["<s>", "</s>", "<unk>"]


def training_text(n_sentences: int = 4000, seed: int = 0) -> list[str]:
    """Deterministic English-like sentences; word i has weight 1 / (i + 1) (Zipf)."""
    words = json.loads((Path(__file__).resolve().parents[1] / "workloads/data/words.json").read_text())
    p = 1.0 / np.arange(1, len(words) + 1)
    p /= p.sum()
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_sentences):
        ws = [words[i] for i in rng.choice(len(words), size=int(rng.integers(4, 16)), p=p)]
        ws[0] = ws[0].capitalize()
        if rng.random() < 0.2:
            ws.insert(int(rng.integers(1, len(ws))), str(int(rng.integers(0, 2000))))
        out.append(" ".join(ws) + str(rng.choice([".", ".", ".", "?", "!", ","])))
    return out


def build(out_dir: Path) -> Path:
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(training_text(), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"), pretty=False)
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "model_max_length": 4096,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    return out_dir


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: build_test_tokenizer.py OUT_DIR", file=sys.stderr)
        return 2
    out = build(Path(argv[0]))
    print(f"wrote {out / 'tokenizer.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
