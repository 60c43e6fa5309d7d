"""Demo v2 probe (issue 14, third attempt): does per-patch supervision teach the tiny LLaVA to find
the asked object among 100 image tokens?

160-px scenes in 16-px patches (10 × 10 = 100 image tokens), 2–5 objects of 12 px, each inside one
patch, distractors sharing the target's colour or shape. Loss: the stock LLaVA answer loss plus
``--aux`` × an auxiliary per-patch loss — the language model's logits at each image position are
trained towards a soft target over the words of that patch (its colour and shape, with
``--auxpos`` also its quadrant's row and column words; empty patches: ``background``), with
``--auxproj`` on the projector outputs instead of the LM's last layer, ``--tie`` with tied
input/output embeddings. Prints greedy exact match per task on held-out scenes every
``--eval-every`` steps. Results and commands: bench/RESULTS.md, "v2 experiment, third attempt" and
"Demo v2 (shipped)".

Fourth attempt's flags: ``--rope`` (the decoder's rope_theta), ``--heads``, ``--easy`` (share of
training scenes drawn with 1–5 objects instead of 2–5), ``--flag`` (a pointer loss: the "yes" logit
over the image tokens, cross-entropy against the target's patch), and the tasks ``wherec`` ("where is
the <colour> object ?", colour unique, a distractor shares the shape — the one the demo ships),
``colourd`` (every object a different colour) and ``shapec`` (the target's shape never the majority).

    PYTHONPATH=. .venv/bin/python bench/demo_v2_probe.py --steps 2000 --bs 32 --eval-every 250 --aux 1
"""

import argparse
import functools
import operator
import random
import sys
import time

import numpy as np
import torch
from PIL import Image, ImageDraw
from transformers import PrinterCallback, ProgressCallback, Trainer, TrainerCallback, TrainingArguments

from dashboard.demo import modeling as demo_modeling
from dashboard.demo import train as demo_train
from dashboard.demo.modeling import TinyLlavaSpec, build_model, build_processor
from dashboard.metrics import exact_match

p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=800)
p.add_argument("--bs", type=int, default=16)
p.add_argument("--lr", type=float, default=3e-3)
p.add_argument("--aux", type=float, default=1.0)
p.add_argument("--th", type=int, default=64)
p.add_argument("--tl", type=int, default=2)
p.add_argument("--vl", type=int, default=1)
p.add_argument("--eval-every", type=int, default=100)
p.add_argument("--neval", type=int, default=120)
p.add_argument("--tasks", default="colour,shape,position")
p.add_argument("--posstd", type=float, default=0.0)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--obj", type=int, default=12)
p.add_argument("--qfirst", type=int, default=0, help="the question before the image in the user turn")
p.add_argument("--prior", type=int, default=0, help="only print the majority-attribute prior over N scenes per task")
p.add_argument("--tie", type=int, default=0)
p.add_argument("--auxpos", type=int, default=0)
p.add_argument("--auxproj", type=int, default=0)
p.add_argument("--rope", type=float, default=10000.0, help="the language model's rope_theta")
p.add_argument("--heads", type=int, default=4, help="the language model's attention heads")
p.add_argument("--easy", type=float, default=0.0, help="share of training scenes with a single object")
p.add_argument("--flag", type=float, default=0.0,
               help="weight of a per-scene pointer loss: the image position of the asked object")
a = p.parse_args()
torch.set_num_threads(a.threads)
CANVAS, PATCH = 160, 16
G = CANVAS // PATCH
BG = (120, 118, 110)
COLOURS = {"red": (230, 40, 40), "green": (40, 200, 70), "blue": (50, 90, 240), "yellow": (240, 220, 40)}
SHAPES = ("square", "triangle", "cross")
TASKS = tuple(a.tasks.split(","))
VOCAB = (
    "what",
    "colour",
    "is",
    "the",
    "shape",
    "object",
    "where",
    "?",
    "top",
    "bottom",
    "left",
    "right",
    "background",
    "yes",
    *COLOURS,
    *SHAPES,
)


def draw(d, shape, box):
    x0, y0, x1, y1 = box
    if shape == "square":
        d.rectangle(box, fill=255)
    elif shape == "triangle":
        d.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=255)
    else:
        arm = (x1 - x0 + 1) // 3
        cx = x0 + (x1 - x0 + 1 - arm) // 2
        cy = y0 + (y1 - y0 + 1 - arm) // 2
        d.rectangle((cx, y0, cx + arm - 1, y1), fill=255)
        d.rectangle((x0, cy, x1, cy + arm - 1), fill=255)


if a.qfirst:  # the text part first: image tokens can then attend to the question
    demo_train.user_messages = lambda prompt: [
        {"role": "user", "content": [{"type": "text", "text": prompt + " "}, {"type": "image"}]}]
full_text, prompt_text = demo_train.full_text, demo_train.prompt_text


def scene(rng, task=None, easy=0.0):
    task = task or rng.choice(TASKS)
    n = 1 if easy and rng.random() < easy else rng.randint(2, 5)
    if task == "colourd":  # every object a different colour: no majority-colour shortcut
        n = min(n, len(COLOURS))
    combos = [(c, s) for c in COLOURS for s in SHAPES]
    for _ in range(1000):
        objs = rng.sample(combos, n) if rng.random() < 0.5 else [rng.choice(combos) for _ in range(n)]
        t = objs[0]
        others = objs[1:]
        if not others:
            break
        if task == "colourd":
            ok = all(o[1] != t[1] for o in others) and len({o[0] for o in objs}) == n
        elif task in ("colour", "where"):  # shape unique, a distractor shares the colour
            ok = all(o[1] != t[1] for o in others) and any(o[0] == t[0] for o in others)
        elif task == "shapec":  # colour unique; the target's shape is never the scene's majority shape
            from collections import Counter

            counts = Counter(o[1] for o in objs)
            ok = all(o[0] != t[0] for o in others) and counts[t[1]] <= max(
                (v for k, v in counts.items() if k != t[1]), default=0)
        elif task in ("shape", "wherec"):
            ok = all(o[0] != t[0] for o in others) and any(o[1] == t[1] for o in others)
        else:  # pair unique, distractors share colour or shape
            ok = all(o != t for o in others) and any(o[0] == t[0] or o[1] == t[1] for o in others)
        if ok:
            break
    cells = rng.sample(range(G * G), n)
    canvas = np.zeros((CANVAS, CANVAS, 3), np.uint8)
    canvas[:] = BG
    boxes = []
    for (c, s), cell in zip(objs, cells, strict=False):
        r, q = divmod(cell, G)
        size = a.obj
        x0 = q * PATCH + (PATCH - size) // 2
        y0 = r * PATCH + (PATCH - size) // 2
        m = Image.new("L", (CANVAS, CANVAS))
        draw(ImageDraw.Draw(m), s, (x0, y0, x0 + size - 1, y0 + size - 1))
        canvas[np.asarray(m) > 0] = COLOURS[c]
        boxes.append(cell)
    c, s = objs[0]
    r, q = divmod(cells[0], G)
    if task in ("colour", "colourd"):
        prompt, ans = f"what colour is the {s} ?", c
    elif task in ("shape", "shapec"):
        prompt, ans = f"what shape is the {c} object ?", s
    elif task == "wherec":
        quadrant = f"{'top' if r < G // 2 else 'bottom'} {'left' if q < G // 2 else 'right'}"
        prompt, ans = f"where is the {c} object ?", quadrant
    elif task == "where":
        prompt, ans = f"where is the {s} ?", f"{'top' if r < G // 2 else 'bottom'} {'left' if q < G // 2 else 'right'}"
    else:
        prompt, ans = (
            f"where is the {c} {s} ?",
            f"{'top' if r < G // 2 else 'bottom'} {'left' if q < G // 2 else 'right'}",
        )
    return dict(image=Image.fromarray(canvas), prompt=prompt, answer=ans, task=task, objs=objs, cells=cells)


def majority_prior(n: int) -> None:
    """How often "the most common answer attribute among the objects" is the answer (no looking needed)."""
    from collections import Counter

    for task in ("colour", "shape", "colourd", "shapec"):
        index = 0 if task.startswith("colour") else 1
        rng, hits = random.Random(1), 0.0
        for _ in range(n):
            objs = scene(rng, task)["objs"]
            counts = Counter(o[index] for o in objs).most_common()
            best = [k for k, v in counts if v == counts[0][1]]
            hits += (objs[0][index] in best) / len(best)
        print(f"{task}: the majority {task} among the objects is the answer in {hits / n:.1%} of scenes")


if a.prior:
    majority_prior(a.prior)
    sys.exit(0)

spec = TinyLlavaSpec(
    image_size=CANVAS,
    patch_size=PATCH,
    vision_hidden=64,
    vision_layers=a.vl,
    vision_heads=4,
    text_hidden=a.th,
    text_layers=a.tl,
    text_heads=a.heads,
    text_intermediate=a.th * 2,
    max_positions=256,
)
proc = build_processor(VOCAB, spec)
_build_config = demo_modeling.build_config


def _config_with_rope(tokenizer, spec):
    config = _build_config(tokenizer, spec)
    config.text_config.rope_parameters["rope_theta"] = a.rope
    return config


demo_modeling.build_config = _config_with_rope
model = build_model(proc, spec, seed=0)
if a.posstd:
    with torch.no_grad():
        model.model.vision_tower.embeddings.position_embedding.weight.normal_(0, a.posstd)
if a.tie:
    model.lm_head.weight = model.model.language_model.embed_tokens.weight
_proj = {}
model.model.multi_modal_projector.register_forward_hook(lambda m, i, o: _proj.__setitem__("out", o))
tok = proc.tokenizer
V = len(tok)
IMG = model.config.image_token_index
wid = {w: tok.convert_tokens_to_ids(w) for w in VOCAB}


class DS(torch.utils.data.Dataset):
    def __len__(self):
        return a.steps * a.bs

    def __getitem__(self, i):
        return scene(random.Random(1_000_003 + i), easy=a.easy)


def collate(exs):
    texts = [full_text(proc, e["prompt"], e["answer"]) for e in exs]
    b = proc(images=[e["image"] for e in exs], text=texts, padding=True, return_tensors="pt")
    ids = b["input_ids"]
    labels = torch.full_like(ids, -100)
    target = torch.zeros(len(exs), G * G, V)
    for i, e in enumerate(exs):
        ans = tok(e["answer"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        end = int(b["attention_mask"][i].nonzero().max()) + 1
        labels[i, end - len(ans) : end] = ids[i, end - len(ans) : end]
        target[i, :, wid["background"]] = 1.0
        for (c, s), cell in zip(e["objs"], e["cells"], strict=False):
            target[i, cell] = 0
            words = [c, s] + (
                [("top" if cell // G < G // 2 else "bottom"), ("left" if cell % G < G // 2 else "right")]
                if a.auxpos
                else []
            )
            for w in words:
                target[i, cell, wid[w]] = 1 / len(words)
    b["labels"] = labels
    b["patch_target"] = target
    b["target_cell"] = torch.tensor([e["cells"][0] for e in exs])
    return dict(b)


class T(Trainer):
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        target = inputs.pop("patch_target")
        target_cell = inputs.pop("target_cell")
        out = model(**inputs)
        loss = out.loss
        if a.flag:
            mask = inputs["input_ids"] == IMG
            yes = out.logits[mask][:, wid["yes"]].float().view(-1, G * G)
            pointer = torch.nn.functional.cross_entropy(yes, target_cell)
            loss = loss + a.flag * pointer
            self._ptr = float(pointer.detach())
        if a.aux:
            if a.auxproj:
                feats = _proj["out"].reshape(-1, G * G, _proj["out"].shape[-1])
                logits = model.lm_head(model.model.language_model.norm(feats))
                logp = torch.log_softmax(logits.float(), -1)
            else:
                mask = inputs["input_ids"] == IMG
                logp = torch.log_softmax(out.logits[mask].float(), -1).view(-1, G * G, V)
            aux = -(target * logp).sum(-1).mean()
            loss = loss + a.aux * aux
            self._aux = float(aux.detach())
        return (loss, out) if return_outputs else loss


evals = [scene(random.Random(7_000_000 + i), easy=1.0 if a.easy == 1.0 else 0.0) for i in range(a.neval)]


@torch.no_grad()
def em():
    model.eval()
    hits: dict[str, list] = {t: [] for t in TASKS}
    words: dict[str, list] = {"row": [], "col": []}
    for st in range(0, len(evals), 60):
        ch = evals[st : st + 60]
        inp = proc(
            images=[e["image"] for e in ch],
            text=[prompt_text(proc, e["prompt"]) for e in ch],
            padding=True,
            return_tensors="pt",
        )
        g = model.generate(**inp, max_new_tokens=4, do_sample=False)
        outs = proc.batch_decode(g[:, inp["input_ids"].shape[1] :], skip_special_tokens=True)
        for e, o in zip(ch, outs, strict=False):
            hits[e["task"]].append(exact_match(o.strip(), e["answer"]))
            if e["task"] in ("where", "wherec", "position"):  # two-word answers: each word scored apart
                got, want = o.split(), e["answer"].split()
                words["row"].append(len(got) > 0 and got[0] == want[0])
                words["col"].append(len(got) > 1 and got[1] == want[1])
    model.train()
    allh = functools.reduce(operator.iadd, hits.values(), [])
    per = {t: round(sum(h) / max(len(h), 1), 2) for t, h in hits.items()}
    per.update({f"{k} word": round(sum(v) / len(v), 2) for k, v in words.items() if v})
    return sum(allh) / len(allh), per


t0 = time.time()


class CB(TrainerCallback):
    def on_step_end(self, args, state, control, **kw):
        if state.global_step % a.eval_every == 0 or state.global_step == a.steps:
            acc, per = em()
            print(
                f"step {state.global_step} t={time.time() - t0:.0f}s em={acc:.3f} {per} "
                f"aux={getattr(tr, '_aux', 0):.3f} ptr={getattr(tr, '_ptr', 0):.3f}",
                flush=True,
            )


args = TrainingArguments(
    output_dir="/tmp/exp14/out",
    max_steps=a.steps,
    per_device_train_batch_size=a.bs,
    learning_rate=a.lr,
    lr_scheduler_type="cosine",
    warmup_steps=20,
    logging_steps=50,
    save_strategy="no",
    report_to=[],
    disable_tqdm=True,
    remove_unused_columns=False,
    use_cpu=True,
    seed=0,
    dataloader_num_workers=0,
)
tr = T(model=model, args=args, train_dataset=DS(), data_collator=collate)
tr.remove_callback(PrinterCallback)
tr.remove_callback(ProgressCallback)
tr.add_callback(CB())
tr.train()
print(f"done {time.time() - t0:.0f}s")
