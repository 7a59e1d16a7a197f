#!/usr/bin/env python3
"""Build a tiny random-weight Llama that a real vLLM server (CPU build) can serve, fully offline.

    python scripts/build_tiny_model.py OUT_DIR [--preset tiny|gpu] [--device cpu|cuda]

Runs inside the vLLM venv (needs torch, transformers, tokenizers); `scripts/vllm_cpu.sh setup`
calls it. Nothing is downloaded:

- tokenizer: byte-level BPE trained here on generated English-like text (vocab ~760) plus a
  chat template, saved with transformers' `save_pretrained` (tokenizer.json + tokenizer_config.json);
- model: LlamaForCausalLM, 2 layers, hidden 128, 4 heads x head_dim 32 (vLLM's CPU attention
  accepts head sizes 32, 64, 80, ... only), 2 KV heads, float32, ~0.5 M parameters, ~2 MB;
- weights rigged so the model can never emit a special token (no EOS: with `ignore_eos` or not,
  the output length equals max_tokens) nor a token whose bytes are not printable ASCII or newline
  (every streamed token decodes to non-empty text on its own).

How the rig works: residual dimension 0 is a constant 1 in every embedding, and no layer writes to
it (o_proj / down_proj row 0 are zero), so after the final RMSNorm h[0] is a positive constant.
lm_head column 0 is 0 for allowed tokens and -100 for banned ones, so banned logits are ~-100 * h[0]
below the rest, whatever the other dimensions say. The script checks it on random inputs.

`--preset gpu` (benchmarks/gpu/check.py) builds the same tokenizer and rig into a model big enough
that a GPU does real work: 20 layers, hidden 1536, 12 heads x 128, 4 KV heads, MLP 4096, vocab
32000 (ids past the tokenizer's ~760 are banned like special tokens), bfloat16, ~0.60 B
parameters, ~1.2 GB; `--device cuda` draws the random weights on the GPU (seconds, not minutes).

Prints one JSON line: {"model", "vocab", "banned", "params", "seconds"}.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time

SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]
WORDS = (
    "the quick brown fox jumps over lazy dog a an of to in is was for on that with as by at from this be "
    "or are it which not have has had one all were we when there can more if no out so said what up its "
    "about into than them only other new some could time these two may then do first any my now such like "
    "our man me even most made after also did many before must through back years where much your way well "
    "down should because each just those people how too little state good very make world still own see "
    "men work long get here between both life being under never day same another know while last might us "
    "great old year off come since against go came right used take three hello user assistant system "
    "request token server load test latency throughput stream model reply question answer"
).split()
# LlamaConfig arguments per preset ("tiny" is what vLLM's CPU tests serve; vocab None = the tokenizer's)
PRESETS = {
    "tiny": {"vocab_size": None, "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32, "dtype": "float32"},
    "gpu": {"vocab_size": 32000, "hidden_size": 1536, "intermediate_size": 4096, "num_hidden_layers": 20,
            "num_attention_heads": 12, "num_key_value_heads": 4, "head_dim": 128, "dtype": "bfloat16"},
}
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<s>' + message['role'] + '\n' + message['content'] + '</s>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<s>assistant\n' }}{% endif %}"
)


def _options(argv: list[str]) -> tuple[str, str, str] | None:
    """(out_dir, preset, device) from `OUT_DIR [--preset P] [--device D]`, or None when malformed."""
    args, opts = argv[1:], {"--preset": "tiny", "--device": "cpu"}
    pos = []
    while args:
        a = args.pop(0)
        if a in opts and args:
            opts[a] = args.pop(0)
        elif a.startswith("-"):
            return None
        else:
            pos.append(a)
    if len(pos) != 1 or opts["--preset"] not in PRESETS:
        return None
    return pos[0], opts["--preset"], opts["--device"]


def main(argv: list[str]) -> int:
    parsed = _options(argv)
    if parsed is None:
        print(__doc__.strip().splitlines()[0])
        print("usage: build_tiny_model.py OUT_DIR [--preset tiny|gpu] [--device cpu|cuda]", file=sys.stderr)
        return 2
    t0 = time.time()
    out, preset, device = parsed
    os.makedirs(out, exist_ok=True)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    rng = random.Random(1234)
    corpus = [
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 25))).capitalize() + rng.choice(".?!,")
        for _ in range(4000)
    ]
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        corpus,
        trainer=trainers.BpeTrainer(
            vocab_size=1024,
            special_tokens=SPECIALS,
            show_progress=False,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=2048,
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    hf_tok.save_pretrained(out)
    # transformers 5 stores the template in chat_template.jinja; keep a copy in the config too
    # so older readers (and plain `tokenizers` users) see the same thing.
    cfg_path = os.path.join(out, "tokenizer_config.json")
    with open(cfg_path) as f:
        tcfg = json.load(f)
    if "chat_template" not in tcfg:
        tcfg["chat_template"] = CHAT_TEMPLATE
        with open(cfg_path, "w") as f:
            json.dump(tcfg, f, indent=2)

    torch.manual_seed(0)
    shape = dict(PRESETS[preset])
    dtype = shape.pop("dtype")
    shape["vocab_size"] = shape["vocab_size"] or len(hf_tok)
    cfg = LlamaConfig(
        **shape,  # tiny: head_dim 32, as vLLM CPU attention takes head sizes 32, 64, 80, ...
        max_position_embeddings=2048,
        bos_token_id=hf_tok.bos_token_id,
        eos_token_id=hf_tok.eos_token_id,
        pad_token_id=hf_tok.pad_token_id,
        tie_word_embeddings=False,
        torch_dtype=dtype,
    )
    with torch.device(device):
        model = LlamaForCausalLM(cfg).to(getattr(torch, dtype))

    u2b = {u: b for b, u in bytes_to_unicode().items()}
    special_ids = set(hf_tok.all_special_ids)

    def banned(piece: str, idx: int) -> bool:
        if idx in special_ids or piece in SPECIALS:
            return True
        bs = [u2b.get(c) for c in piece]
        return not bs or any(b is None or not (32 <= b < 127 or b == 10) for b in bs)

    ban = sorted(i for s, i in hf_tok.get_vocab().items() if banned(s, i))
    ban += list(range(len(hf_tok), cfg.vocab_size))  # ids the tokenizer cannot decode
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 1.0
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0, :] = 0.0
            layer.mlp.down_proj.weight[0, :] = 0.0
        model.lm_head.weight[:, 0] = 0.0
        model.lm_head.weight[ban, 0] = -100.0
        probs = model(torch.randint(0, cfg.vocab_size, (4, 64), device=device)).logits.float().softmax(-1)
        worst = probs[..., ban].max().item()
        assert worst < 1e-6, f"banned tokens still reachable (p={worst})"
    # every allowed token decodes to non-empty text on its own
    ban_set = set(ban)
    allowed = [i for i in range(len(hf_tok)) if i not in ban_set]
    empty = [i for i in allowed if not hf_tok.decode([i])]
    assert not empty, f"tokens decoding to empty text: {empty[:10]}"

    model.save_pretrained(out, safe_serialization=True)
    GenerationConfig(
        bos_token_id=cfg.bos_token_id,
        eos_token_id=cfg.eos_token_id,
        pad_token_id=cfg.pad_token_id,
        do_sample=True,
        temperature=1.0,
    ).save_pretrained(out)
    print(
        json.dumps(
            {
                "model": out,
                "vocab": len(hf_tok),
                "banned": len(ban),
                "params": sum(x.numel() for x in model.parameters()),
                "seconds": round(time.time() - t0, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
