"""The pipeline's PRM training step and scoring against a plain-PyTorch loop on the same shape and data.

Both sides use the same random-init model (Qwen2 architecture at the chosen shape), the same fixed-length
examples and the same settings the device calls for (bf16 autocast and fused AdamW on CUDA; fp32 scoring on the
CPU). The pipeline side is `prm_core.prm.discriminative.train_prm` (fine-tuning, length-bucketed batches) and
`score_steps`; the plain side is what a user writes by hand: pre-built tensors, forward, BCE at the separators,
backward, clip, step — and a no-grad forward for scoring. Prints tokens/s of each, their ratios and, on CUDA, MFU.

    python bench/prm_throughput.py [--shape tiny|qwen2-0.5b|qwen2-1.5b] [--features] [--json]

Imports only torch, transformers, tokenizers (and peft for LoRA): it runs on a bare CUDA image.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = {  # Qwen2 shapes (hidden, layers, heads, kv heads, intermediate, vocab)
    "tiny": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=512, vocab_size=2048),
    "qwen2-0.5b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                       intermediate_size=4864, vocab_size=151936),
    "qwen2-1.5b": dict(hidden_size=1536, num_hidden_layers=28, num_attention_heads=12, num_key_value_heads=2,
                       intermediate_size=8960, vocab_size=151936),
}
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}  # dense TFLOP/s


def words(n: int) -> list[str]:
    """`n` distinct letter-only words (one token each in the testbed tokenizer)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [" w" + letters[i // 676 % 26] + letters[i // 26 % 26] + letters[i % 26] for i in range(n)]


def examples(n: int, steps: int, words_per_step: int, prompt_words: int, seed: int = 0):
    """`n` distinct examples, all of one token length, with alternating 0/1 step targets."""
    import random

    from prm_core.prm.encoding import PRMExample

    rng = random.Random(seed)
    vocab = words(1000)
    out = []
    for i in range(n):
        prompt = "".join(rng.choice(vocab) for _ in range(prompt_words)) + "\n"
        body = ["".join(rng.choice(vocab) for _ in range(words_per_step)) for _ in range(steps)]
        out.append(PRMExample(prompt, body, [float((i + t) % 2) for t in range(steps)]))
    return out


def build(shape: str, tokenizer, features: bool, path: Path):
    """A random-init causal LM of `shape` saved at `path`, then the PRM on it exactly as the pipeline builds it."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from prm_core.prm.discriminative import init_prm

    cfg = AutoConfig.for_model("qwen2", **SHAPES[shape], tie_word_embeddings=True, max_position_embeddings=4096,
                               bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                               pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg).save_pretrained(path)
    return init_prm(path, tokenizer, "\n", features=features)


def timed(fn, device) -> float:
    """Seconds `fn()` takes, the device's queue drained before and after."""
    import torch

    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def tensor_batches(tokenizer, exs, sep: int, length: int, size: int, device, targets: bool):
    """The examples encoded exactly as the pipeline does, padded into device tensors of `size` rows."""
    from prm_core.prm.encoding import encode_many, pad_batch

    enc = encode_many(tokenizer, [e.prompt for e in exs], [e.steps for e in exs], sep, length)
    return [tuple(t.to(device) for t in pad_batch(tokenizer, enc[b: b + size],
                                                   [e.targets if targets else [] for e in exs[b: b + size]]))
            for b in range(0, len(enc), size)]


def plain_train(model, batches, steps: int, device, lr: float) -> None:
    """`steps` hand-written training steps over pre-built device tensors."""
    import torch

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0,
                            **({"fused": True} if device.type == "cuda" else {}))
    for step in range(steps):
        ids, mask, y = batches[step % len(batches)]
        with torch.autocast(device.type, dtype=torch.bfloat16):
            logits = model(input_ids=ids, attention_mask=mask).logits[..., 0].float()
        keep = ~torch.isnan(y)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits[keep], y[keep])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    loss.item()


def plain_score(model, batches, device) -> None:
    """A hand-written no-grad forward over pre-built device tensors (bf16 on CUDA)."""
    import torch

    model.eval()
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
        for ids, mask, _ in batches:
            torch.sigmoid(model(input_ids=ids, attention_mask=mask).logits[..., 0].float()).cpu()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="tiny", choices=sorted(SHAPES))
    parser.add_argument("--features", action="store_true", help="the LM-feature PRM instead of the stock classifier")
    parser.add_argument("--steps", type=int, default=None, help="training steps timed (default: 60 CPU, 30 GPU)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 16 CPU, 16 GPU")
    parser.add_argument("--seq", type=int, default=None, help="tokens per example (default: 128 CPU, 512 GPU)")
    parser.add_argument("--score-examples", type=int, default=None, help="default: 1024 CPU, 2048 GPU")
    parser.add_argument("--repeats", type=int, default=5, help="alternating timed runs per side; the best counts")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()

    import tempfile
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    from prm_core.generation.tokenizer import build_tokenizer
    from prm_core.prm.discriminative import PRMTrainConfig, score_steps, train_prm
    from prm_core.prm.encoding import encode, separator_id
    from prm_core.runtime.device import default_device

    device = default_device()
    cuda = device.type == "cuda"
    steps = args.steps or (30 if cuda else 60)
    batch = args.batch_size or 16
    seq = args.seq or (512 if cuda else 128)
    n_score = args.score_examples or (2048 if cuda else 1024)
    n_steps, prompt_words = 8, 15
    per_step = max(1, (seq - 2 - prompt_words) // n_steps - 1)  # bos + prompt + "\n", then words + separator
    train_ex = examples(batch * 8, n_steps, per_step, prompt_words, seed=1)
    score_ex = examples(n_score, n_steps, per_step, prompt_words, seed=2)
    tok = build_tokenizer(words(1000) + ["\n"])
    sep = separator_id(tok, "\n")
    length = len(encode(tok, train_ex[0].prompt, train_ex[0].steps, sep, 1 << 20).input_ids)
    cfg = PRMTrainConfig(steps=steps, batch_size=batch, freeze_backbone=False, lr_head=1e-4, lr_body=1e-5,
                         max_length=length, warmup_steps=1)
    with tempfile.TemporaryDirectory() as tmp:
        model = build(args.shape, tok, args.features, Path(tmp) / "lm")
        model.to(device)
        params = sum(p.numel() for p in model.parameters())
        batches = tensor_batches(tok, train_ex, sep, length, batch, device, targets=True)
        sbatches = tensor_batches(tok, score_ex, sep, length, 64, device, targets=False)
        prompts, bodies = [e.prompt for e in score_ex], [e.steps for e in score_ex]

        # warm-up (kernels, allocator) on both sides, then alternating timed runs; the best of each side counts
        train_prm(model, tok, train_ex, "\n", PRMTrainConfig(**{**cfg.__dict__, "steps": 2}))
        plain_train(model, batches[:1], 2, device, 1e-5)
        score_steps(model, tok, prompts[:64], bodies[:64], "\n", max_length=length)
        plain_score(model, sbatches[:1], device)
        train_s = plain_train_s = score_s = plain_score_s = float("inf")
        for _ in range(args.repeats):
            train_s = min(train_s, timed(lambda: train_prm(model, tok, train_ex, "\n", cfg), device))
            plain_train_s = min(plain_train_s, timed(lambda: plain_train(model, batches, steps, device, 1e-5), device))
            score_s = min(score_s, timed(lambda: score_steps(model, tok, prompts, bodies, "\n", max_length=length), device))
            plain_score_s = min(plain_score_s, timed(lambda: plain_score(model, sbatches, device), device))

    train_tokens, score_tokens = steps * batch * length, n_score * length
    out = {
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "shape": args.shape, "features": args.features, "params": params, "seq": length, "batch_size": batch,
        "train_tok_s": train_tokens / train_s, "plain_train_tok_s": train_tokens / plain_train_s,
        "score_tok_s": score_tokens / score_s, "plain_score_tok_s": score_tokens / plain_score_s,
    }
    out["train_ratio"] = out["train_tok_s"] / out["plain_train_tok_s"]
    out["score_ratio"] = out["score_tok_s"] / out["plain_score_tok_s"]
    peak = next((v for k, v in PEAK_BF16.items() if k in out["device"]), None)
    if peak:  # 6·N flops per trained token, 2·N per scored token
        out["train_mfu"] = 6 * params * out["train_tok_s"] / peak
        out["score_mfu"] = 2 * params * out["score_tok_s"] / peak
    if args.json:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}))
    else:
        for k, v in out.items():
            print(f"{k:>18}: {v:,.3f}" if isinstance(v, float) else f"{k:>18}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
